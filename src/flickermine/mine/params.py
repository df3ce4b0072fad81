"""The miner's parameters: one place for each default, its seed name and its trade-off."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from flickermine.errors import ConfigError

#: The seed's command-line names (``get_hardNegative.py``) of each parameter.
SEED_NAMES: dict[str, str] = {
    "score_threshold": "validScore",
    "window": "alpha",
    "iou_threshold": "iouThr",
    "search_margin": "beta",
    "similarity_threshold": "validSimScore",
    "border_margin": "crossBoundary",
    "min_area": "smallBoxSize",
}


@dataclass(frozen=True)
class MinerParams:
    """Parameters of the flicker (hard-negative) miner, SPEC §3. Defaults are the seed's.

    Attributes:
        score_threshold: detections scoring below it are ignored everywhere, as candidates and as
            support (seed ``validScore``, 0.8). Raising it mines only confident mistakes but lets
            weak true detections stop supporting real objects, so more of those get flagged.
        window: frames searched for support before and after (seed ``alpha``, 5). Larger windows
            tolerate longer detector drop-outs (fewer true objects flagged) but let an unrelated
            box further away in time rescue a flicker; frames closer than ``window`` to either end
            of the video are not mined.
        iou_threshold: IoU above which a neighbouring detection supports a box, compared with
            both the box itself and its tracked position (seed ``iouThr``, 0.2). Lower values
            accept looser support (fewer hard negatives, fewer false alarms).
        search_margin: pixels added on every side of the box to form the template-matching
            search region (seed ``beta``, 100). Larger margins follow faster motion but cost
            more matching time and may lock onto a look-alike.
        similarity_threshold: best normalised cross-correlation under which the object's
            appearance is judged to have changed (occlusion, cut, blur), which counts as support
            (seed ``validSimScore``, 0.5). Raising it makes the miner more cautious.
        border_margin: boxes closer than this many pixels to any image edge are never flagged
            (seed ``crossBoundary``, 50): objects entering or leaving the frame flicker
            legitimately.
        min_area: boxes smaller than this many square pixels are never flagged (seed
            ``smallBoxSize``, 1600 = 40x40): tiny boxes carry too little texture to track.
        confident_score: boxes scoring at or above it are never flagged (seed: 0.98, fixed).
    """

    score_threshold: float = 0.8
    window: int = 5
    iou_threshold: float = 0.2
    search_margin: int = 100
    similarity_threshold: float = 0.5
    border_margin: float = 50
    min_area: float = 1600
    confident_score: float = 0.98

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{f.name}: expected a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{f.name}: expected a finite number, got {value!r}")
        if int(self.window) != self.window or self.window < 1:
            raise ConfigError(f"window: expected an integer >= 1, got {self.window!r}")
        if int(self.search_margin) != self.search_margin or self.search_margin < 0:
            raise ConfigError(f"search_margin: expected an integer >= 0, got {self.search_margin}")
        for name in ("iou_threshold", "similarity_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        for name in ("border_margin", "min_area"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: expected a value >= 0, got {getattr(self, name)}")
        object.__setattr__(self, "window", int(self.window))
        object.__setattr__(self, "search_margin", int(self.search_margin))

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for JSON and Parquet metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MinerParams:
        """Build from a dictionary, rejecting unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown miner parameter(s): {', '.join(unknown)}")
        return cls(**values)
