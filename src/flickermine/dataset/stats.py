"""Statistics of a COCO file (``flickermine dataset stats``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from flickermine.dataset.coco import Coco, check_coco

SMALL, MEDIUM = 32**2, 96**2  # COCO's area ranges


def coco_stats(coco: Coco, source: str = "annotations") -> dict[str, Any]:
    """Counts, boxes per image and COCO size classes, overall and per category.

    Raises:
        CocoError: the file fails :func:`~flickermine.dataset.coco.check_coco` (naming
            ``source``).
    """
    check_coco(coco, source)
    per_image = Counter(a["image_id"] for a in coco["annotations"])
    counts = np.array([per_image.get(img["id"], 0) for img in coco["images"]], float)
    areas = np.array(
        [a.get("area", a["bbox"][2] * a["bbox"][3]) for a in coco["annotations"]], float,
    )  # fmt: skip
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco["categories"]}
    records = [img["flickermine"] for img in coco["images"] if "flickermine" in img]
    mined = len(records)
    return {
        "images": len(coco["images"]),
        "annotations": len(coco["annotations"]),
        "categories": len(coco["categories"]),
        "images_without_annotations": int((counts == 0).sum()),
        "boxes_per_image": {
            "mean": float(counts.mean()) if counts.size else 0.0,
            "median": float(np.median(counts)) if counts.size else 0.0,
            "max": int(counts.max()) if counts.size else 0,
        },
        "box_sizes": {
            "small": int((areas < SMALL).sum()),
            "medium": int(((areas >= SMALL) & (areas < MEDIUM)).sum()),
            "large": int((areas >= MEDIUM).sum()),
        },
        "per_category": {
            names.get(cid, str(cid)): n
            for cid, n in Counter(a["category_id"] for a in coco["annotations"]).most_common()
        },
        "mined_images": mined,
        "original_images": len(coco["images"]) - mined,
        "hard_negatives_recorded": sum(
            len(r["hard_negatives"])
            for r in records
            if isinstance(r, dict) and isinstance(r.get("hard_negatives"), list)
        ),
    }
