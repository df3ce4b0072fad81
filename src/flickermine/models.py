"""torchvision detection models and flickermine checkpoints (shared by detect and train).

A checkpoint is a ``torch.save`` dictionary::

    {"format": "flickermine-checkpoint", "version": 1, "model_name": str, "num_classes": int,
     "categories": [{"id": int, "name": str}, ...],   # label i (1-based) -> categories[i - 1]
     "min_size": int, "max_size": int, "model": state_dict, ...training state...}

torch and torchvision are imported lazily: the rest of flickermine works without them.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from flickermine.errors import ConfigError, ModelError

CHECKPOINT_FORMAT = "flickermine-checkpoint"
DEFAULT_MODEL = "fasterrcnn_resnet50_fpn_v2"
#: A small Faster R-CNN (four conv layers, one feature map) for tests and quick experiments.
TINY_MODEL = "fasterrcnn_tiny"
DETECTION_MODELS = (
    TINY_MODEL,
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
)


def require_torch() -> Any:
    """Import torch and torchvision, with a clear message when they are missing."""
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError:
        raise ModelError(
            "this needs torch and torchvision: pip install 'flickermine[torch]' "
            "(or torch==2.14.1 torchvision==0.29.1)"
        ) from None
    return torch


def resolve_device(device: str) -> Any:
    """``torch.device(device)``, checked to be usable here (before any model is loaded).

    Raises:
        ConfigError: not a device name torch knows, or a device this machine lacks.
    """
    torch = require_torch()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device: {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device: {device!r} asked for, but torch sees no CUDA device")
        if (dev.index or 0) >= count:
            raise ConfigError(f"device: {device!r} asked for; torch sees {count} CUDA device(s)")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as exc:  # e.g. mps on a machine without it
        raise ConfigError(f"device: {device!r} is not usable here: {exc}") from None
    return dev


def build_model(
    name: str,
    num_classes: int,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
) -> Any:
    """An untrained torchvision detection model with ``num_classes`` (background included)."""
    require_torch()
    import torchvision

    if name == TINY_MODEL:
        return _tiny_faster_rcnn(num_classes, min_size or 128, max_size or 256)
    if name not in torchvision.models.list_models(torchvision.models.detection):
        raise ConfigError(
            f"unknown detection model {name!r}; choose from {', '.join(DETECTION_MODELS)}"
        )
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
    if min_size:
        kwargs["min_size"] = min_size
    if max_size:
        kwargs["max_size"] = max_size
    return torchvision.models.get_model(name, **kwargs)


def _tiny_faster_rcnn(num_classes: int, min_size: int, max_size: int) -> Any:
    """Faster R-CNN on a four-layer CNN (stride 8, 64 channels): trains from scratch in seconds."""
    from torch import nn
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    backbone = nn.Sequential(*block(3, 16, 2), *block(16, 32, 2), *block(32, 64, 2),
                             *block(64, 64, 1))  # fmt: skip
    backbone.out_channels = 64  # type: ignore[assignment]
    anchors = AnchorGenerator(sizes=((16, 32, 64, 128),), aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    return FasterRCNN(
        backbone, rpn_anchor_generator=anchors, box_roi_pool=roi_pool,
        box_head=TwoMLPHead(64 * 7 * 7, 128), box_predictor=FastRCNNPredictor(128, num_classes),
        min_size=min_size, max_size=max_size,
        box_detections_per_img=50, rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, box_batch_size_per_image=128,
    )  # fmt: skip


def _check_published(name: str, what: str) -> None:
    """Refuse a model name torchvision does not publish weights for, saying why."""
    import torchvision

    if name in torchvision.models.list_models(torchvision.models.detection):
        return
    if name in DETECTION_MODELS:
        raise ConfigError(
            f"{name} has no {what} (it is flickermine's small model for tests): train it from "
            "scratch (--weights none) or start from one of its checkpoints (--weights FILE)"
        )
    raise ConfigError(
        f"unknown detection model {name!r}; choose from {', '.join(DETECTION_MODELS)}"
    )


def published_weights(name: str, weights: str) -> tuple[Any, list[str]]:
    """The torchvision weights ``weights`` of model ``name`` and their category names by
    label index, without downloading anything.

    Args:
        weights: ``DEFAULT`` or a weights name such as ``COCO_V1`` or
            ``FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1``.
    """
    require_torch()
    import torchvision

    _check_published(name, "published weights")
    enum = torchvision.models.get_model_weights(name)
    try:
        w = torchvision.models.get_weight(weights) if "." in weights else enum[weights]
    except (KeyError, ValueError, AttributeError):
        choices = ", ".join(dict.fromkeys(["DEFAULT", *enum.__members__]))
        raise ConfigError(
            f"unknown weights {weights!r} for {name}; choose from {choices} or a checkpoint file"
        ) from None
    return w, list(w.meta["categories"])


def pretrained_model(name: str, weights: str) -> tuple[Any, list[str]]:
    """A torchvision model with published weights (downloaded and cached by torchvision).

    Args:
        weights: as for :func:`published_weights`.

    Returns:
        The model and its category names by label index.
    """
    w, names = published_weights(name, weights)
    return load_published(name, w), names


def load_published(name: str, weights: Any) -> Any:
    """Model ``name`` with the weights :func:`published_weights` resolved (downloaded and
    cached by torchvision)."""
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise ModelError(
            f"cannot load weights {weights} for {name}: {exc}. Without a network, pass a "
            "checkpoint file (--weights FILE) or put the weights in torch's cache"
        ) from None


def imagenet_model(name: str, num_classes: int, *, min_size: int, max_size: int) -> Any:
    """A detection model whose backbone starts from torchvision's ImageNet weights (the seed's
    VGG16 setup); the detection heads are untrained. Downloads like :func:`pretrained_model`."""
    require_torch()
    import torchvision

    _check_published(name, "published ImageNet backbone")
    try:
        return torchvision.models.get_model(
            name, weights=None, weights_backbone="DEFAULT", num_classes=num_classes,
            min_size=min_size, max_size=max_size,
        )  # fmt: skip
    except (OSError, RuntimeError) as exc:
        raise ModelError(
            f"cannot load the ImageNet backbone of {name}: {exc}. Without a network, pass a "
            "checkpoint file (--weights FILE) or put the weights in torch's cache"
        ) from None


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    model_name: str,
    categories: list[dict[str, Any]],
    **extra: Any,
) -> None:
    """Write a checkpoint atomically."""
    torch = require_torch()
    from flickermine._atomic import atomic_path

    state = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model_name": model_name,
        "num_classes": len(categories) + 1,
        "categories": categories,
        "min_size": _first(getattr(model.transform, "min_size", None)),
        "max_size": getattr(model.transform, "max_size", None),
        "model": model.state_dict(),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (tuple, list)) and value else value


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint dictionary (on the CPU) and check its format."""
    torch = require_torch()
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: checkpoint file not found")
    try:
        # Tensors, plain containers and numbers only: unpickling anything else could run code.
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{p}: refused: the checkpoint holds objects other than tensors and plain values, "
            f"which are never unpickled (they can run code) ({first[:200]})"
        ) from None
    except Exception as exc:  # torch raises many kinds on a bad file
        raise ModelError(f"{p}: not a readable checkpoint: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{p}: not a flickermine checkpoint (written by `flickermine train`)")
    _check_checkpoint(p, ckpt)
    return ckpt


def _check_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """The fields every reader of a checkpoint relies on, with their types."""
    expected = {"model_name": str, "num_classes": int, "categories": list, "model": dict}
    for key, kind in expected.items():
        if key not in ckpt:
            raise ModelError(f"{path}: damaged checkpoint: no {key!r}")
        if not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool):
            raise ModelError(
                f"{path}: damaged checkpoint: {key!r} is a {type(ckpt[key]).__name__}, "
                f"expected a {kind.__name__}"
            )
    cats = ckpt["categories"]
    if not cats or not all(isinstance(c, dict) and "name" in c and "id" in c for c in cats):
        raise ModelError(f"{path}: damaged checkpoint: 'categories' must list {{id, name}} dicts")
    if ckpt["num_classes"] != len(cats) + 1:
        raise ModelError(
            f"{path}: damaged checkpoint: {ckpt['num_classes']} classes for {len(cats)} "
            "categories (expected categories + 1)"
        )


def load_checkpoint_model(
    path: str | os.PathLike[str], expected_name: str | None = None
) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """The model stored in a checkpoint, its categories and the checkpoint dictionary."""
    ckpt = read_checkpoint(path)
    name = ckpt["model_name"]
    if expected_name and expected_name != name:
        raise ModelError(f"{path}: checkpoint is a {name}, not a {expected_name}")
    model = build_model(
        name, ckpt["num_classes"], min_size=ckpt.get("min_size"), max_size=ckpt.get("max_size")
    )
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit a {name}: {str(exc)[:300]}") from None
    return model, list(ckpt["categories"]), ckpt
