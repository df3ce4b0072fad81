"""Fine-tuning a torchvision Faster R-CNN for one category (``flickermine train``)."""

from __future__ import annotations

from flickermine.train.config import TrainConfig, load_config
from flickermine.train.loop import train

__all__ = ["TrainConfig", "load_config", "train"]
