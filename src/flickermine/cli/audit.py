"""``flickermine audit``: how right is what the miner found? Scored against ground truth."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_write_text
from flickermine.audit import MATCH_IOU, audit, format_audit
from flickermine.cli._common import add_quiet_argument


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="score a mining output against ground truth (precision of what was mined)",
        description="Compares every verdict of a mining output with annotated boxes: the "
        "detector's false positives, the hard negatives' precision and the share of false "
        "positives they catch, the precision of hard positives and pseudo-positives, and how "
        "loose the detector's boxes are. Writes MINED/audit.json (or --out).",
    )
    p.add_argument("mined", help="a mining output folder, or one video's <video>.json")
    p.add_argument(
        "--gt", required=True, action="append",
        help="ground truth: MOTChallenge gt.txt (frames 1-based, 'consider' honoured) or COCO "
        "JSON with images carrying video and frame (1-based); for several videos a COCO file "
        "naming them, or STEM=FILE once per video",
    )  # fmt: skip
    p.add_argument(
        "--iou", type=float, default=MATCH_IOU,
        help=f"IoU at which a box is the annotated object (default {MATCH_IOU})",
    )  # fmt: skip
    p.add_argument("--out", help="write the figures as JSON here (default MINED/audit.json)")
    add_quiet_argument(p)
    p.set_defaults(run=run)


def _ground_truth(values: list[str]) -> str | dict[str, str | os.PathLike[str]]:
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out: dict[str, str | os.PathLike[str]] = {}
    for v in values:
        stem, sep, path = v.partition("=")
        if not sep or not stem or not path:
            from flickermine.errors import ConfigError

            raise ConfigError(f"--gt: with several files, expected STEM=FILE, got {v!r}")
        out[stem] = path
    return out


def run(args: argparse.Namespace) -> int:
    result = audit(args.mined, _ground_truth(args.gt), iou=args.iou)
    mined = Path(args.mined)
    out = Path(args.out) if args.out else (mined if mined.is_dir() else mined.parent) / "audit.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(format_audit(result))
    print(f"figures in {out}")
    return 0
