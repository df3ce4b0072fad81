"""``--backend module:function``: any Python callable from a batch of frames to detections."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import numpy.typing as npt

from flickermine.detect.base import DetectError, FrameDetections, check_output


class PluginDetector:
    """Wraps ``module:function``; the function receives a list of BGR frames and returns one
    ``(xyxy, scores)`` pair per frame. Attributes ``description``, ``category`` and
    ``score_threshold`` of the function, when present, go into the metadata."""

    def __init__(self, spec: str, category: str | None = None) -> None:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise DetectError(f"plugin {spec!r}: expected module:function")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # the module's own code can raise anything at import
            raise DetectError(
                f"plugin {spec!r}: cannot import {module_name}: {type(exc).__name__}: {exc}"
            ) from None
        fn: Any = module
        for part in attr.split("."):
            fn = getattr(fn, part, None)
            if fn is None:
                raise DetectError(f"plugin {spec!r}: {module_name} has no {attr}")
        if not callable(fn):
            raise DetectError(f"plugin {spec!r}: {attr} is not callable")
        self.fn = fn
        self.spec = spec
        self.description = str(getattr(fn, "description", f"plugin:{spec}"))
        self.category = category or getattr(fn, "category", None)
        self.score_threshold = getattr(fn, "score_threshold", None)

    def __call__(self, frames: list[npt.NDArray[np.uint8]]) -> list[FrameDetections]:
        try:
            result = self.fn(frames)
        except Exception as exc:  # user code: any error is the plugin's, named as such
            raise DetectError(
                f"plugin {self.spec!r} raised {type(exc).__name__}: {str(exc)[:300]}"
            ) from None
        return check_output(result, len(frames), f"plugin {self.spec}")
