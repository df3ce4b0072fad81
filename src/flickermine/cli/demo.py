"""``flickermine demo``: the whole offline loop on the bundled clip."""

from __future__ import annotations

import argparse
from typing import Any

from flickermine.cli._common import add_quiet_argument, progress_bar
from flickermine.demo import frames_of, run_demo, sample_video


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="detect people (HOG) and mine flickers on the bundled sample clip",
        description="Runs detect (OpenCV HOG, person) and mine on a bundled 200-frame clip of "
        "OpenCV's vtest.avi and writes a folder to review.",
    )
    p.add_argument("--out", default="demo-output", help="output folder (default: ./demo-output)")
    p.add_argument("--video", help="use this video instead of the bundled clip")
    p.add_argument("--overwrite", action="store_true", help="redo an earlier demo")
    add_quiet_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    video = args.video or sample_video()
    with progress_bar(2 * frames_of(video), "demo: detect + mine") as bar:
        result = run_demo(args.out, video=args.video, overwrite=args.overwrite,
                          progress=bar.update)  # fmt: skip
    s = result.summary
    print(
        f"flickermine demo: {s['frames']} frames, {s['valid_detections']} detections, "
        f"{s['hard_negatives']} hard negatives and {s['hard_positives']} hard positives in "
        f"{s['frames_written']} frames.\n"
        f"Review them in a browser: {result.out_dir / 'report' / 'index.html'}\n"
        f"Open {result.out_dir / 'SUMMARY.md'} and {result.out_dir / 'visualizations'}."
    )
    return 0
