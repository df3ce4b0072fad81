"""``flickermine evaluate`` and ``flickermine compare``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_write_text
from flickermine.cli._common import add_quiet_argument, progress_bar
from flickermine.dataset import load_coco
from flickermine.dataset.coco import CocoError, check_coco, check_results, find_category
from flickermine.errors import ConfigError
from flickermine.evaluate import coco_metrics, predict_coco
from flickermine.evaluate.compare import compare, signed_pct
from flickermine.evaluate.metrics import pct


def add_parser(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="COCO AP of a checkpoint or of detections, one category")
    e.add_argument("checkpoint", nargs="?", help="checkpoint written by flickermine train")
    e.add_argument("--detections", help="COCO results JSON instead of a checkpoint")
    _common(e)
    e.add_argument("--out", help="write the metrics as JSON here")
    add_quiet_argument(e)
    e.set_defaults(run=run_evaluate)
    c = sub.add_parser("compare", help="two models or detection sets side by side, with pictures")
    c.add_argument("a", help="baseline: checkpoint (.pt) or COCO results (.json)")
    c.add_argument("b", help="candidate: checkpoint (.pt) or COCO results (.json)")
    _common(c)
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--score-threshold", type=float, default=0.5,
                   help="score at which false positives are counted (default 0.5)")  # fmt: skip
    c.add_argument("--max-pairs", type=int, default=50, help="before/after pictures at most")
    c.add_argument("--overwrite", action="store_true", help="replace an earlier comparison")
    add_quiet_argument(c)
    c.set_defaults(run=run_compare)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, help="ground-truth COCO file")
    p.add_argument("--images", help="image folder of --gt (needed to run a checkpoint)")
    p.add_argument("--category", help="category name or id (default: the only one)")
    p.add_argument("--device", default="cpu")


def _detections(
    source: str, gt: dict[str, Any], args: argparse.Namespace, cid: int
) -> list[dict[str, Any]]:
    if Path(source).suffix == ".json":
        try:
            dets = json.loads(Path(source).read_text())
        except (OSError, ValueError) as exc:
            raise CocoError(f"{source}: unreadable detections: {exc}") from None
        check_results(dets, {img["id"] for img in gt["images"]}, source)
        return dets
    if not args.images:
        raise ConfigError("--images is required to run a checkpoint")
    with progress_bar(len(gt["images"]), f"running {Path(source).name}", unit="image") as bar:
        return predict_coco(
            source, gt, args.images, cid, device=args.device, progress=bar.update, source=args.gt
        )


def _category_id(gt: dict[str, Any], args: argparse.Namespace) -> int:
    if args.category is None:
        if len(gt["categories"]) != 1:
            raise CocoError(f"{args.gt}: several categories; choose one with --category")
        cid = gt["categories"][0]["id"]
    else:
        cid = find_category(gt, args.category, args.gt)["id"]
    if isinstance(cid, bool) or not isinstance(cid, int):
        raise CocoError(
            f"{args.gt}: category id {cid!r} is not an integer; COCO evaluation needs integer "
            "category ids"
        )
    return cid


def run_evaluate(args: argparse.Namespace) -> int:
    if bool(args.checkpoint) == bool(args.detections):
        raise ConfigError("give a CHECKPOINT or --detections RESULTS.json (one of them)")
    gt = load_coco(args.gt)
    check_coco(gt, args.gt)
    cid = _category_id(gt, args)
    dets = _detections(args.checkpoint or args.detections, gt, args, cid)
    metrics = coco_metrics(gt, dets, cid, source=args.gt)
    print(metrics.table())
    if args.out:
        atomic_write_text(args.out, json.dumps(metrics.to_dict(), indent=2) + "\n")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    gt = load_coco(args.gt)
    check_coco(gt, args.gt)
    cid = _category_id(gt, args)
    if not args.images:
        raise ConfigError("--images is required (pictures are drawn on them)")
    result = compare(
        gt, _detections(args.a, gt, args, cid), _detections(args.b, gt, args, cid), args.images,
        args.out, cid, score_threshold=args.score_threshold, max_pairs=args.max_pairs,
        source=args.gt, overwrite=args.overwrite,
        sources={"A (baseline)": args.a, "B (candidate)": args.b, "ground truth": args.gt},
    )  # fmt: skip
    a, b = result["A"], result["B"]
    fp = result["false_positives_per_image"]
    print(f"{result['category']}: AP {pct(a['ap'])} -> {pct(b['ap'])} "
          f"({signed_pct(result['delta']['ap'])}); false positives per image "
          f"{fp['A']:.3f} -> {fp['B']:.3f}; {len(result['pairs'])} picture pairs "
          f"in {args.out}")  # fmt: skip
    return 0
