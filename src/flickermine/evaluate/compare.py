"""Comparing two models (or two detection sets) on the same ground truth: metrics side by side,
false positives per image, and before/after pictures where a false positive went away or came."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flickermine._atomic import atomic_write_bytes, atomic_write_text
from flickermine._system import pyplot
from flickermine.dataset.coco import Coco, CocoError, image_file
from flickermine.errors import ConfigError, OutputExistsError
from flickermine.evaluate.metrics import STAT_NAMES, coco_metrics, pct
from flickermine.paths import remove_own_files
from flickermine.report.draw import HARD_POSITIVE_BGR, draw_boxes
from flickermine.structures import iou_matrix, xywh_to_xyxy


def false_positives(
    gt: Coco,
    detections: list[dict[str, Any]],
    category_id: int,
    score_threshold: float,
    iou: float = 0.5,
) -> dict[Any, list[dict[str, Any]]]:
    """Detections at or above ``score_threshold`` matching no ground-truth box of the category
    (IoU >= ``iou``, each box matched once, highest scores first), by image id."""
    gt_boxes: dict[Any, list[list[float]]] = {img["id"]: [] for img in gt["images"]}
    for a in gt["annotations"]:
        if a["category_id"] == category_id and a["image_id"] in gt_boxes:
            gt_boxes[a["image_id"]].append(a["bbox"])
    by_image: dict[Any, list[dict[str, Any]]] = {i: [] for i in gt_boxes}
    for d in detections:
        if (
            d["category_id"] == category_id
            and d["score"] >= score_threshold
            and d["image_id"] in by_image
        ):
            by_image[d["image_id"]].append(d)
    out: dict[Any, list[dict[str, Any]]] = {}
    for image_id, dets in by_image.items():
        dets = sorted(dets, key=lambda d: -d["score"])
        g = xywh_to_xyxy(np.array(gt_boxes[image_id], float).reshape(-1, 4))
        used = np.zeros(len(g), bool)
        fps = []
        for d in dets:
            box = xywh_to_xyxy(np.array([d["bbox"]], float))
            ious = iou_matrix(box, g)[0] if len(g) else np.zeros(0)
            ious[used] = -1
            if len(ious) and ious.max() >= iou:
                used[int(ious.argmax())] = True
            else:
                fps.append(d)
        out[image_id] = fps
    return out


# Public API: its options are keyword-only, one per command-line flag.
def compare(  # noqa: PLR0913
    gt: Coco,
    dets_a: list[dict[str, Any]],
    dets_b: list[dict[str, Any]],
    images_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    category: str | int | None = None,
    *,
    score_threshold: float = 0.5,
    names: tuple[str, str] = ("A", "B"),
    max_pairs: int = 50,
    source: str = "ground truth",
    overwrite: bool = False,
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/compare.json``, ``out_dir/README.md`` and before/after pictures in
    ``out_dir/pairs/``, and the precision–recall curves of both at IoU 0.5 in
    ``out_dir/pr.png``; returns the comparison. ``sources`` (what ``A``, ``B`` and the ground
    truth are: checkpoint or results files) is recorded with it.

    Raises:
        OutputExistsError: ``out_dir`` is not empty and ``overwrite`` is not set (with it,
            the pictures of the earlier comparison are removed first).
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(
            f"{out}: output folder exists and is not empty; pass --overwrite to replace it"
        )
    if not math.isfinite(score_threshold):
        raise ConfigError(f"score_threshold: expected a finite number, got {score_threshold}")
    if max_pairs < 0:
        raise ConfigError(f"max_pairs: expected >= 0, got {max_pairs}")
    ma = coco_metrics(gt, dets_a, category, source=source)
    mb = coco_metrics(gt, dets_b, category, source=source)
    cid = ma.category_id
    fa = false_positives(gt, dets_a, cid, score_threshold)
    fb = false_positives(gt, dets_b, cid, score_threshold)
    n = max(1, len(gt["images"]))
    changed = sorted(
        (i for i in fa if len(fa[i]) != len(fb[i])), key=lambda i: -abs(len(fa[i]) - len(fb[i]))
    )
    removed = [i for i in changed if len(fb[i]) < len(fa[i])]
    added = [i for i in changed if len(fb[i]) > len(fa[i])]
    remove_own_files(out / "pairs", _OWN_PAIR)
    sides = (("before", dets_a, fa), ("after", dets_b, fb))
    pairs = _draw_pairs(gt, sides, cid, score_threshold,
                        lambda record: image_file(images_dir, record, source),
                        out / "pairs", changed[:max_pairs])  # fmt: skip
    curves = {names[0]: _pr_curve(gt, dets_a, cid), names[1]: _pr_curve(gt, dets_b, cid)}
    result = {
        "category": ma.category, "category_id": cid, "score_threshold": score_threshold,
        names[0]: ma.to_dict(), names[1]: mb.to_dict(),
        "delta": {k: _delta(getattr(ma, k), getattr(mb, k)) for k in STAT_NAMES},
        "false_positives_per_image": {names[0]: sum(map(len, fa.values())) / n,
                                      names[1]: sum(map(len, fb.values())) / n},
        "images_false_positive_removed": removed, "images_false_positive_added": added,
        "pairs": pairs,
        "sources": sources or {}, "pr_curves": curves,
    }  # fmt: skip
    _plot_pr(curves, out / "pr.png")
    atomic_write_text(out / "compare.json", json.dumps(result, indent=2, default=str) + "\n")
    atomic_write_text(out / "README.md", _markdown(result, names))
    return result


#: The pictures a comparison writes into ``pairs/`` (and their temporary names).
_OWN_PAIR = re.compile(r"\.?.+_(before|after)\.jpg(\.\d+-\d+-\d+\.tmp)?")


#: One side of a comparison: its label, its detections, and its false positives by image.
_Side = tuple[str, list[dict[str, Any]], dict[Any, list[dict[str, Any]]]]


def _draw_pairs(
    gt: Coco,
    sides: tuple[_Side, _Side],
    cid: Any,
    thr: float,
    locate: Callable[[dict[str, Any]], Path],
    out: Path,
    image_ids: list[Any],
) -> list[dict[str, Any]]:
    """Draw each image of ``image_ids`` before and after (ground truth, and the boxes of each
    side scoring at least ``thr``, false positives in red) into ``out``; the pairs' records.
    ``locate`` finds an image record's file."""
    records = {img["id"]: img for img in gt["images"]}
    (_, _, fa), (_, _, fb) = sides
    pairs = []
    for image_id in image_ids:
        path = locate(records[image_id])
        image = cv2.imread(str(path))
        if image is None:
            raise CocoError(f"{path}: image of id {image_id} missing or unreadable")
        gt_boxes = [
            a["bbox"]
            for a in gt["annotations"]
            if a["image_id"] == image_id and a["category_id"] == cid
        ]
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{image_id}_{path.stem}")  # ids are unique
        written = {}
        for label, dets, false_positives in sides:
            fps = false_positives[image_id]
            mine = [
                d
                for d in dets
                if d["image_id"] == image_id and d["category_id"] == cid and d["score"] >= thr
            ]
            fp_ids = {id(d) for d in fps}
            boxes = [*gt_boxes, *(d["bbox"] for d in mine)]
            colors = [HARD_POSITIVE_BGR] * len(gt_boxes) + [
                (0, 0, 255) if id(d) in fp_ids else (0, 200, 0) for d in mine
            ]
            labels = [""] * len(gt_boxes) + [f"{d['score']:.2f}" for d in mine]
            xyxy = xywh_to_xyxy(np.array(boxes, float).reshape(-1, 4))
            picture = draw_boxes(np.asarray(image, np.uint8), xyxy, colors, labels)
            name = f"{stem}_{label}.jpg"
            atomic_write_bytes(out / name, cv2.imencode(".jpg", picture)[1].tobytes())
            written[label] = f"pairs/{name}"
        pairs.append({"image_id": image_id, "file_name": records[image_id]["file_name"],
                      "false_positives_before": len(fa[image_id]),
                      "false_positives_after": len(fb[image_id]), **written})  # fmt: skip
    return pairs


def _pr_curve(gt: Coco, dets: list[dict[str, Any]], cid: Any) -> dict[str, list[float]]:
    """Precision and recall at IoU 0.5 as the score threshold falls (greedy matching by score,
    each annotation once; crowd regions neither count nor are missed), thinned to <= 200
    points."""
    boxes: dict[Any, list[list[float]]] = {img["id"]: [] for img in gt["images"]}
    for a in gt["annotations"]:
        if a["category_id"] == cid and not a.get("iscrowd", 0) and a["image_id"] in boxes:
            boxes[a["image_id"]].append(a["bbox"])
    total = sum(map(len, boxes.values()))
    ranked = sorted((d for d in dets if d["category_id"] == cid and d["image_id"] in boxes),
                    key=lambda d: -d["score"])  # fmt: skip
    used = {i: np.zeros(len(b), bool) for i, b in boxes.items()}
    xyxy = {i: xywh_to_xyxy(np.array(b, float).reshape(-1, 4)) for i, b in boxes.items()}
    tp = fp = 0
    precision, recall = [], []
    for d in ranked:
        g = xyxy[d["image_id"]]
        ious = np.zeros(0)
        if len(g):
            ious = iou_matrix(xywh_to_xyxy(np.array([d["bbox"]], float)), g)[0]
            ious = np.where(used[d["image_id"]], -1.0, ious)
        if len(ious) and ious.max() >= 0.5:
            used[d["image_id"]][int(np.argmax(ious))] = True
            tp += 1
        else:
            fp += 1
        precision.append(tp / (tp + fp))
        recall.append(tp / total if total else 0.0)
    step = max(1, len(precision) // 200)
    return {"precision": precision[::step], "recall": recall[::step]}


def _plot_pr(curves: dict[str, dict[str, list[float]]], png: Path) -> None:
    plt = pyplot("precision-recall plot")
    if plt is None:
        return
    from flickermine._atomic import atomic_path

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, c in curves.items():
        ax.plot(c["recall"], c["precision"], label=name)
    ax.set_xlabel("recall (IoU 0.5)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _markdown(r: dict[str, Any], names: tuple[str, str]) -> str:
    a, b = r[names[0]], r[names[1]]
    rows = "\n".join(
        f"| {k} | {pct(a[k])} | {pct(b[k])} | {signed_pct(r['delta'][k])} |"
        for k in ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar100")
    )
    fp = r["false_positives_per_image"]
    pics = "\n".join(
        f"| {p['file_name']} | {p['false_positives_before']} → {p['false_positives_after']} | "
        f"![]({p['before']}) | ![]({p['after']}) |"
        for p in r["pairs"]
    )
    return (
        f"# {names[0]} vs {names[1]}: {r['category']}\n\n"
        + "".join(f"- {k}: `{v}`\n" for k, v in r["sources"].items())
        + ("\n" if r["sources"] else "")
        + "Precision–recall at IoU 0.5: ![](pr.png)\n\n"
        "COCO metrics in percent (`compare.json` holds them as fractions):\n\n"
        f"| metric | {names[0]} | {names[1]} | delta |\n"
        f"|---|---|---|---|\n{rows}\n\nFalse positives per image at score ≥ "
        f"{r['score_threshold']}: {fp[names[0]]:.3f} → {fp[names[1]]:.3f}.\n\n"
        "Ground truth blue, true positives green, false positives red.\n\n"
        f"| image | false positives | {names[0]} | {names[1]} |\n|---|---|---|---|\n{pics}\n"
    )


def _delta(a: float, b: float) -> float | None:
    """``b - a``; None where either is undefined (COCO's -1: no ground truth of that size)."""
    return None if a < 0 or b < 0 else round(b - a, 6)


def signed_pct(v: float | None) -> str:
    """A difference of statistics in percent with its sign, ``n/a`` where undefined."""
    return "n/a" if v is None else f"{100 * v:+.1f}"
