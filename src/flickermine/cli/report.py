"""``flickermine report``: review what was mined, in the browser, before training on it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flickermine.cli._common import add_quiet_argument, progress_bar
from flickermine.report.html import find_videos, write_report


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="a review page of mining outputs (accept/reject, export decisions) and videos",
        description="Writes REPORT/index.html: a summary, a gallery of hard negatives and hard "
        "positives (pseudo-positives with --pseudo-positives) to accept or reject, and a "
        "button that exports decisions.json for dataset merge --decisions. Opens from disk, "
        "offline.",
    )
    p.add_argument("mined", nargs="+", help="mining output folders or <video>.json summaries")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument(
        "--pseudo-positives", action="store_true",
        help="show the pseudo-positives too (they become annotations when merged)",
    )  # fmt: skip
    p.add_argument(
        "--video", action="store_true",
        help="also write REPORT/videos/<video>.mp4: every detection drawn, per video",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="write over an earlier report")
    add_quiet_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = write_report(args.mined, args.out, pseudo_positives=args.pseudo_positives,
                          overwrite=args.overwrite)  # fmt: skip
    print(f"{result['examples']} examples of {result['videos']} video(s): {result['page']}")
    if args.video:
        from flickermine.report.video import write_review_video

        videos = find_videos(args.mined)
        with progress_bar(len(videos), "review videos", unit="video") as bar:
            for v in videos:
                path = write_review_video(v, Path(args.out) / "videos" / f"{v.stem}.mp4")
                bar.update(1)
                print(f"review video: {path}")
    return 0
