"""``flickermine audit``: how right is what the miner found? Scored against ground truth."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_write_text
from flickermine.audit import MATCH_IOU, audit, format_audit
from flickermine.cli._common import add_quiet_argument, progress_bar
from flickermine.errors import ConfigError
from flickermine.mine.outputs import mined_outputs
from flickermine.mine.params import PRESETS, HardPositiveParams, MinerParams
from flickermine.tune import (
    DEFAULT_GRID,
    best_setting,
    grid_settings,
    params_yaml,
    plot_frontier,
    sweep,
)


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
    s = p.add_argument_group("sweep: choose mining parameters on this annotated footage")
    s.add_argument(
        "--sweep", action="store_true",
        help="mine the videos again over a grid of parameters (score threshold, support score, "
        "size rule, window; hard positives too when the output has them), score each, write "
        "sweep.json, frontier.png and best.yaml (for mine --config) into --sweep-out",
    )  # fmt: skip
    s.add_argument("--sweep-out", help="folder for the sweep's files (default MINED/sweep)")
    s.add_argument(
        "--min-precision", type=float, default=0.9,
        help="best.yaml: the setting with the most hard negatives at this precision (0.9)",
    )  # fmt: skip
    s.add_argument(
        "--base-preset", choices=tuple(PRESETS), default="seed",
        help="parameters not in the grid come from this preset (default seed)",
    )  # fmt: skip
    add_quiet_argument(p)
    p.set_defaults(run=run)


def _ground_truth(values: list[str]) -> str | dict[str, str | os.PathLike[str]]:
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out: dict[str, str | os.PathLike[str]] = {}
    for v in values:
        stem, sep, path = v.partition("=")
        if not sep or not stem or not path:
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
    if args.sweep:
        folder = Path(args.sweep_out) if args.sweep_out else out.parent / "sweep"
        run_sweep(args, folder)
    return 0


def run_sweep(args: argparse.Namespace, folder: Path) -> None:
    """``--sweep``: the grid, its frontier plot and the best setting."""
    if not 0 < args.min_precision <= 1:
        raise ConfigError(f"--min-precision: expected a value in (0, 1], got {args.min_precision}")
    hp = _hard_positive_params(args.mined)
    settings = grid_settings(DEFAULT_GRID, MinerParams.preset(args.base_preset))
    with progress_bar(len(settings), "sweep", unit="setting") as bar:
        rows = sweep(args.mined, _ground_truth(args.gt), settings, hard_positives=hp,
                     iou=args.iou, progress=bar.update)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "sweep.json", json.dumps(rows, indent=2) + "\n")
    plotted = plot_frontier(rows, folder / "frontier.png")
    best = best_setting(rows, args.min_precision)
    print(f"{len(rows)} settings in {folder / 'sweep.json'}"
          + (f", frontier in {folder / 'frontier.png'}" if plotted else ""))  # fmt: skip
    if best is None:
        print(f"no setting reaches hard-negative precision {args.min_precision}")
        return
    note = (
        f"{best['hard_negatives']} hard negatives at precision "
        f"{best['hard_negative_precision']}, {best['false_positives_flagged']} of the detector's "
        f"false positives; hard positives {best['hard_positives']} at precision "
        f"{best['hard_positive_precision']} (flickermine audit --sweep)"
    )
    atomic_write_text(folder / "best.yaml", params_yaml(best["params"], note))
    print(f"best at precision >= {args.min_precision}: {note}")
    print(f"use it: flickermine mine ... --config {folder / 'best.yaml'}")


def _hard_positive_params(mined: str) -> HardPositiveParams | None:
    """The hard-positive parameters the output was mined with (``None``: none mined)."""
    recorded = mined_outputs(mined)[0][1].get("params", {}).get("hard_positives")
    return HardPositiveParams(**recorded) if isinstance(recorded, dict) else None
