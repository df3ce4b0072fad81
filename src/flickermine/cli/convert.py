"""``flickermine convert``: between the legacy text format and native Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flickermine.cli._common import add_quiet_argument
from flickermine.errors import OutputExistsError
from flickermine.io import load_detections, save_detections
from flickermine.mine.run import check_frame_counts, check_frame_size
from flickermine.video import VideoReader


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert detection files (legacy .txt <-> native .parquet)",
        description="Convert a detection file; the format of each side follows its suffix.",
    )
    p.add_argument("src", help="input detection file (.txt or .parquet)")
    p.add_argument("dst", help="output detection file (.txt or .parquet)")
    p.add_argument(
        "--video", help="the video the detections belong to: records its frame count, fps and "
        "size in the metadata and checks the frame count",
    )  # fmt: skip
    p.add_argument(
        "--allow-partial", action="store_true",
        help="with --video: accept detections covering only the first frames of the video "
        "(an interrupted detection run); by default that is an error",
    )  # fmt: skip
    p.add_argument("--category", help="category name to record in the metadata")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_quiet_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dst = Path(args.dst)
    if dst.exists() and not args.overwrite:
        raise OutputExistsError(f"{dst}: exists; pass --overwrite to replace it")
    dets = load_detections(args.src)
    if args.video:
        reader = VideoReader(args.video)
        check_frame_counts(
            dets, reader.num_frames, args.src, args.video, partial=args.allow_partial
        )
        check_frame_size(dets, reader, args.src)
        dets.meta.update(
            video=str(reader.path), fps=reader.fps, width=reader.width, height=reader.height
        )
    if args.category:
        dets.meta["category"] = args.category
    dets.meta.pop("format", None)
    save_detections(dets, dst)
    print(f"{args.src} -> {dst}: {len(dets)} boxes in {dets.num_frames} frames")
    return 0
