"""Mining hard examples from detections on video (docs/method.md §3–4)."""

from __future__ import annotations

from flickermine.mine.flicker import FrameVerdicts, iter_flickers
from flickermine.mine.params import SEED_NAMES, HardPositiveParams, MinerParams
from flickermine.mine.run import MineJob, find_jobs, mine_many, mine_video

__all__ = [
    "SEED_NAMES",
    "FrameVerdicts",
    "HardPositiveParams",
    "MineJob",
    "MinerParams",
    "find_jobs",
    "iter_flickers",
    "mine_many",
    "mine_video",
]
