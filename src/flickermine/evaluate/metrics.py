"""COCO metrics for one category, as named fields (faster-coco-eval; pycocotools' numbers)."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from dataclasses import asdict, dataclass
from typing import Any

from flickermine.dataset.coco import Coco, CocoError, check_coco, check_results, find_category

logger = logging.getLogger(__name__)

#: Names of COCOeval's twelve summary numbers, in its order.
STAT_NAMES = (
    "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip


@dataclass(frozen=True)
class CocoMetrics:
    """COCO box metrics of one category (fractions in [0, 1]; -1 where COCO says undefined,
    e.g. AP small when the ground truth has no small object)."""

    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar1: float
    ar10: float
    ar100: float
    ar_small: float
    ar_medium: float
    ar_large: float
    category_id: int
    category: str
    images: int
    detections: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for JSON)."""
        return asdict(self)

    def table(self) -> str:
        """A small text table (percent)."""
        rows = [
            ("AP@[.5:.95]", self.ap), ("AP50", self.ap50), ("AP75", self.ap75),
            ("AP small", self.ap_small), ("AP medium", self.ap_medium),
            ("AP large", self.ap_large), ("AR@100", self.ar100),
        ]  # fmt: skip
        head = f"{self.category} (id {self.category_id}), {self.images} images, "
        head += f"{self.detections} detections"
        return head + "\n" + "\n".join(f"  {n:<12} {pct(v):>6}" for n, v in rows)


def pct(v: float) -> str:
    """A COCO statistic in percent, ``n/a`` where it is undefined (-1)."""
    return "n/a" if v < 0 else f"{100 * v:.1f}"


def coco_metrics(
    gt: Coco,
    detections: list[dict[str, Any]],
    category: str | int | None = None,
    *,
    image_ids: list[int] | None = None,
    backend: str = "faster_coco_eval",
    source: str = "ground truth",
) -> CocoMetrics:
    """Evaluate COCO-format ``detections`` (``image_id, category_id, bbox [x,y,w,h], score``)
    against ``gt`` for one category.

    Args:
        category: name or id; the only category of ``gt`` when omitted.
        image_ids: restrict to these images (default: every image of ``gt``).
        backend: ``faster_coco_eval`` (default) or ``pycocotools`` (same numbers, slower).

    An empty detection list gives AP 0 (not a crash).

    Raises:
        CocoError: ``gt`` fails :func:`~flickermine.dataset.coco.check_coco`, a detection is
            malformed or names an image ``gt`` lacks, or the category is unknown.
    """
    check_coco(gt, source)
    check_results(detections, {img["id"] for img in gt["images"]})
    cat = _category(gt, category, source)
    ids = list(image_ids) if image_ids is not None else [img["id"] for img in gt["images"]]
    dets = [d for d in detections if d.get("category_id") == cat["id"]]
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    elif backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        raise ValueError(f"unknown backend {backend!r}")
    # Annotation ids must be >= 1 for pycocotools; keep the file as it is otherwise.
    gt_copy = copy.copy(gt)
    gt_copy.setdefault("info", {})
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        coco_gt = COCO()
        coco_gt.dataset = gt_copy
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
            ev = COCOeval(coco_gt, coco_dt, "bbox")
            ev.params.imgIds = ids
            ev.params.catIds = [cat["id"]]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats = [float(v) for v in ev.stats[:12]]
        else:
            has_gt = any(a.get("category_id") == cat["id"] for a in gt["annotations"])
            stats = [0.0 if has_gt else -1.0] * 12
    for line in captured.getvalue().splitlines():
        logger.debug(line)
    return CocoMetrics(**dict(zip(STAT_NAMES, stats, strict=True)), category_id=cat["id"],
                       category=str(cat.get("name", cat["id"])), images=len(ids),
                       detections=len(dets))  # fmt: skip


def _category(gt: Coco, category: str | int | None, source: str) -> dict[str, Any]:
    if category is None:
        if len(gt["categories"]) != 1:
            names = ", ".join(str(c.get("name")) for c in gt["categories"][:10])
            raise CocoError(f"{source}: several categories ({names}); choose one with --category")
        return dict(gt["categories"][0])
    return find_category(gt, category, source)
