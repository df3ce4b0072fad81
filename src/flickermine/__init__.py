"""flickermine: unsupervised hard example mining from videos for object detectors.

The library mirrors the pipeline: :mod:`flickermine.video` reads videos,
:mod:`flickermine.io` reads and writes detection files, :mod:`flickermine.mine` finds hard
negatives, :mod:`flickermine.report` draws what a person reviews. Every command-line action is a
library call::

    from flickermine import MinerParams, mine_video
    summary = mine_video("video1.mp4", "video1.parquet", "mined/", MinerParams(window=5))
"""

from __future__ import annotations

__version__ = "0.1.0"

from flickermine.errors import FlickermineError
from flickermine.io import load_detections, save_detections
from flickermine.mine import (
    HardPositiveParams,
    MinerParams,
    iter_flickers,
    mine_many,
    mine_video,
)
from flickermine.structures import VideoDetections
from flickermine.video import VideoReader

__all__ = [
    "FlickermineError",
    "HardPositiveParams",
    "MinerParams",
    "VideoDetections",
    "VideoReader",
    "__version__",
    "iter_flickers",
    "load_detections",
    "mine_many",
    "mine_video",
    "save_detections",
]
