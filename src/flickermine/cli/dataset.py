"""``flickermine dataset merge|export|subset|stats``: COCO files from mined frames."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from flickermine.cli._common import add_quiet_argument
from flickermine.dataset import (
    CocoError,
    coco_stats,
    export_mined,
    load_coco,
    merge_files,
    parse_splits,
    read_mined,
    save_coco,
    single_category_subset,
    split_images,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dataset", help="COCO datasets: merge mined frames, subsets, statistics")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    _add_merge(dsub)
    _add_export(dsub)
    _add_subset(dsub)
    _add_unmerge(dsub)
    _add_frames(dsub)


def _add_merge(dsub: Any) -> None:
    m = dsub.add_parser("merge", help="add mined frames to a COCO annotation file")
    m.add_argument("annotations", help="COCO JSON to extend (never changed without --in-place)")
    m.add_argument(
        "mined", nargs="+",
        help="mining output folders, <video>.json summaries or seed result .txt files",
    )  # fmt: skip
    m.add_argument("--images", required=True, help="image folder of the dataset (frames go here)")
    m.add_argument("--category", required=True, help="category name or id of the positives")
    m.add_argument("--out", help="new annotation file")
    m.add_argument("--in-place", action="store_true", help="write over the input (a .bak is kept)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    m.add_argument(
        "--require-positive", action="store_true",
        help="drop frames without any positive box (the seed's behaviour)",
    )  # fmt: skip
    m.add_argument("--link", action="store_true", help="hard-link (or symlink) frames, no copy")
    m.add_argument(
        "--decisions",
        help="decisions.json exported by flickermine report: rejected boxes are left out",
    )
    add_quiet_argument(m)
    m.set_defaults(run=run_merge)


def _add_export(dsub: Any) -> None:
    e = dsub.add_parser("export", help="mined frames as a standalone COCO dataset for review")
    e.add_argument("mined", nargs="+", help="mining output folders, summaries or seed .txt files")
    e.add_argument("--out", required=True, help="dataset folder (images/ + annotations.json)")
    e.add_argument(
        "--category",
        help="category name (default: the one the detection files record, else object)",
    )
    e.add_argument("--link", action="store_true", help="hard-link (or symlink) frames, no copy")
    e.add_argument("--overwrite", action="store_true", help="replace an existing annotations.json")
    add_quiet_argument(e)
    e.set_defaults(run=run_export)


def _add_subset(dsub: Any) -> None:
    s = dsub.add_parser("subset", help="single-category subset with optional splits")
    s.add_argument("annotations", help="COCO JSON")
    s.add_argument("--category", required=True, help="category name or id to keep")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument(
        "--negatives", type=float, default=0.0,
        help="fraction of the images without the category to keep as negatives (default 0)",
    )  # fmt: skip
    s.add_argument(
        "--split",
        help="fractions, e.g. train=0.8,val=0.1,test=0.1, or numbers of images, e.g. "
        "train=5000,val=500,test=rest; each split is written to <name>.json",
    )
    s.add_argument(
        "--split-by", choices=("image", "video", "time"), default="image",
        help="image (shuffled), video (whole videos to one split) or time (each video's "
        "frames in order, earliest first): consecutive frames of a video are near-duplicates",
    )  # fmt: skip
    s.add_argument(
        "--gap", type=int, default=0,
        help="with --split-by time: frames left out at every boundary (e.g. 25)",
    )  # fmt: skip
    s.add_argument(
        "--mined-anywhere", action="store_true",
        help="let frames added by dataset merge go to any split (default: the first only)",
    )  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="seed of negatives and splits")
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_quiet_argument(s)
    s.set_defaults(run=run_subset)


def _add_unmerge(dsub: Any) -> None:
    u = dsub.add_parser("unmerge", help="the COCO file without the frames merge added")
    u.add_argument("annotations", help="COCO JSON that merge extended")
    u.add_argument("--out", required=True, help="new annotation file")
    u.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_quiet_argument(u)
    u.set_defaults(run=run_unmerge)


def _add_frames(dsub: Any) -> None:
    f = dsub.add_parser(
        "frames", help="a COCO dataset of video frames, labelled from ground truth or detections"
    )
    f.add_argument("video", help="the video")
    f.add_argument("--out", required=True, help="dataset folder (images/ + annotations.json)")
    f.add_argument("--frames", help="START:STOP[:STEP], 0-based, STOP excluded (default: all)")
    f.add_argument("--gt", help="labels: MOTChallenge gt.txt of the video")
    f.add_argument("--detections", help="or pseudo-labels: a detection file of the video")
    f.add_argument("--score-threshold", type=float, default=0.5,
                   help="with --detections: boxes scoring at least this (default 0.5)")  # fmt: skip
    f.add_argument("--category", default="person", help="category name (default: person)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    add_quiet_argument(f)
    f.set_defaults(run=run_frames)
    t = dsub.add_parser("stats", help="images, annotations, box sizes, mined vs original")
    t.add_argument("annotations", help="COCO JSON")
    t.add_argument("--json", action="store_true", help="print JSON")
    t.set_defaults(run=run_stats)


def run_merge(args: argparse.Namespace) -> int:
    report, backup = merge_files(
        args.annotations, args.mined, args.images, args.category, args.out,
        in_place=args.in_place, overwrite=args.overwrite,
        require_positive=args.require_positive, link=args.link, decisions=args.decisions,
    )  # fmt: skip
    target = args.annotations if args.in_place else args.out
    if args.decisions:
        print(
            f"left out as rejected in review: {report.rejected_hard_negatives} hard negatives, "
            f"{report.rejected_hard_positives} hard positives, "
            f"{report.rejected_pseudo_positives} pseudo-positives"
        )
    print(
        f"merged into {target}: {report.images_added} images, {report.annotations_added} "
        f"annotations added; {report.hard_negatives_recorded} hard negatives recorded; "
        f"{report.boxes_too_small} boxes <= 10 px dropped; "
        f"{report.without_positive_dropped} frames without positives dropped"
    )
    if report.already_present:
        print(f"{report.already_present} mined frames were already in the dataset: not added again")
    if backup:
        print(f"backup of the input: {backup}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    target = out / "annotations.json"
    if target.exists() and not args.overwrite:
        raise CocoError(f"{target}: exists; pass --overwrite to replace it")
    frames = [f for m in args.mined for f in read_mined(m)]
    category = args.category or _recorded_category(frames) or "object"
    coco, report = export_mined(frames, out, category, link=args.link)
    save_coco(coco, target)
    print(
        f"exported {report.images_added} frames, {report.annotations_added} boxes to {target} "
        f"(images in {out / 'images'})"
    )
    return 0


def _recorded_category(frames: list[Any]) -> str | None:
    """The category the detection files behind mined frames record (HOG's is person)."""
    import contextlib

    from flickermine.errors import FlickermineError
    from flickermine.io import read_native_meta

    for source in dict.fromkeys(f.source for f in frames if f.source.endswith(".json")):
        with contextlib.suppress(OSError, ValueError, FlickermineError):
            dets = json.loads(Path(source).read_text()).get("detections", "")
            if str(dets).endswith(".parquet"):
                category = read_native_meta(dets).get("category")
                if isinstance(category, str) and category:
                    return category
    return None


def run_subset(args: argparse.Namespace) -> int:
    coco = load_coco(args.annotations)
    sub = single_category_subset(
        coco, args.category, negatives=args.negatives, seed=args.seed, source=args.annotations
    )
    splits = parse_splits(args.split)
    parts = (
        split_images(sub, splits, args.seed, by=args.split_by, gap=args.gap,
                     mined_in_first=not args.mined_anywhere, source=args.annotations)
        if splits
        else {"annotations": sub}
    )  # fmt: skip
    out = Path(args.out)
    targets = {name: out / f"{name}.json" for name in parts}
    existing = [t for t in targets.values() if t.exists()]
    if existing and not args.overwrite:
        raise CocoError(f"{existing[0]}: exists; pass --overwrite to replace it")
    for name, part in parts.items():
        save_coco(part, targets[name])
        print(f"{targets[name]}: {len(part['images'])} images, {len(part['annotations'])} boxes")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    stats = coco_stats(load_coco(args.annotations), args.annotations)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    b, z = stats["boxes_per_image"], stats["box_sizes"]
    print(
        f"{args.annotations}\n"
        f"  images              {stats['images']:>9}  ({stats['mined_images']} mined, "
        f"{stats['original_images']} original)\n"
        f"  annotations         {stats['annotations']:>9}\n"
        f"  without annotations {stats['images_without_annotations']:>9}\n"
        f"  boxes per image     mean {b['mean']:.2f}, median {b['median']:g}, max {b['max']}\n"
        f"  box sizes           small {z['small']}, medium {z['medium']}, large {z['large']}\n"
        f"  hard negatives      {stats['hard_negatives_recorded']:>9} (recorded, not annotated)"
    )
    for name, n in list(stats["per_category"].items())[:20]:
        print(f"    {name:<24} {n:>9}")
    return 0


def run_frames(args: argparse.Namespace) -> int:
    from flickermine.dataset.frames import frames_dataset, parse_range
    from flickermine.video import VideoReader

    out = Path(args.out)
    target = out / "annotations.json"
    if target.exists() and not args.overwrite:
        raise CocoError(f"{target}: exists; pass --overwrite to replace it")
    reader = VideoReader(args.video)
    frames = parse_range(args.frames, reader.num_frames, "--frames")
    coco = frames_dataset(args.video, out, frames, category=args.category, gt=args.gt,
                          detections=args.detections,
                          score_threshold=args.score_threshold)  # fmt: skip
    save_coco(coco, target)
    print(f"{len(coco['images'])} frames, {len(coco['annotations'])} boxes: {target}")
    return 0


def run_unmerge(args: argparse.Namespace) -> int:
    from flickermine.dataset.coco import check_coco
    from flickermine.dataset.merge import remove_mined_frames
    from flickermine.paths import same_path

    out = Path(args.out)
    if same_path(out, args.annotations):
        raise CocoError(f"{out}: is the input; choose another --out")
    if out.exists() and not args.overwrite:
        raise CocoError(f"{out}: exists; pass --overwrite to replace it")
    coco = load_coco(args.annotations)
    check_coco(coco, args.annotations)
    removed = remove_mined_frames(coco)
    save_coco(coco, out)
    print(f"{removed} mined frame(s) removed, {len(coco['images'])} images left: {out}")
    return 0
