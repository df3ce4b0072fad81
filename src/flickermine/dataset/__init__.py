"""COCO datasets: merge mined frames, export them, single-category subsets, statistics."""

from __future__ import annotations

from flickermine.dataset.coco import CocoError, check_coco, find_category, load_coco, save_coco
from flickermine.dataset.merge import MergeReport, add_mined_frames, export_mined, merge_files
from flickermine.dataset.mined import MinedFrame, read_mined
from flickermine.dataset.stats import coco_stats
from flickermine.dataset.subset import (
    parse_splits,
    single_category_subset,
    split_by_image,
    split_images,
)

__all__ = [
    "CocoError",
    "MergeReport",
    "MinedFrame",
    "add_mined_frames",
    "check_coco",
    "coco_stats",
    "export_mined",
    "find_category",
    "load_coco",
    "merge_files",
    "parse_splits",
    "read_mined",
    "save_coco",
    "single_category_subset",
    "split_by_image",
    "split_images",
]
