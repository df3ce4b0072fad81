"""Single-category subsets of a COCO file, with seeded negatives and splits (the seed's setup)."""

from __future__ import annotations

import random
from typing import Any

from flickermine.dataset.coco import Coco, CocoError, check_coco, find_category


def parse_splits(text: str | None) -> list[tuple[str, float]]:
    """``"train=0.8,val=0.1,test=0.1"`` (fractions) or ``"train=5000,val=500"`` (counts; the
    last split may be ``rest``)."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        name, _, value = part.partition("=")
        if not name or not value:
            raise CocoError(f"--split: expected name=value pairs, got {part!r}")
        if value == "rest":
            out.append((name.strip(), -1.0))
            continue
        try:
            out.append((name.strip(), float(value)))
        except ValueError:
            raise CocoError(f"--split: {value!r} is not a number") from None
    if any(v < 0 and v != -1 for _, v in out):
        raise CocoError("--split: sizes must be >= 0")
    return out


def single_category_subset(
    coco: Coco,
    category: str | int,
    *,
    negatives: float = 0.0,
    seed: int = 0,
    source: str = "annotations",
) -> Coco:
    """Images containing ``category`` (plus a seeded fraction ``negatives`` of the images without
    it, kept as pure negatives) with only that category's annotations; ids, names and other
    top-level keys kept."""
    if not 0.0 <= negatives <= 1.0:
        raise CocoError(f"negatives: expected a fraction in [0, 1], got {negatives}")
    check_coco(coco, source)
    cat = find_category(coco, category, source)
    anns = [a for a in coco["annotations"] if a.get("category_id") == cat["id"]]
    positive_ids = {a["image_id"] for a in anns}
    others = [img for img in coco["images"] if img["id"] not in positive_ids]
    rng = random.Random(seed)
    chosen_neg = {img["id"] for img in rng.sample(others, round(negatives * len(others)))}
    keep = positive_ids | chosen_neg
    out: Coco = {k: v for k, v in coco.items() if k not in ("images", "annotations", "categories")}
    out["images"] = [img for img in coco["images"] if img["id"] in keep]
    out["annotations"] = anns
    out["categories"] = [cat]
    return dict(_ordered(coco, out))


def _ordered(original: Coco, new: Coco) -> list[tuple[str, Any]]:
    return [(k, new[k]) for k in original if k in new]


def split_by_image(coco: Coco, splits: list[tuple[str, float]], seed: int = 0) -> dict[str, Coco]:
    """Seeded split of ``coco`` by image: fractions (summing to at most 1) or counts."""
    images = list(coco["images"])
    random.Random(seed).shuffle(images)
    n = len(images)
    fractions = all(0 <= v <= 1 for _, v in splits if v != -1) and any(0 < v < 1 for _, v in splits)
    if fractions and sum(v for _, v in splits if v != -1) > 1 + 1e-9:
        raise CocoError("--split: fractions add up to more than 1")
    sizes = []
    for _, v in splits:
        sizes.append(-1 if v == -1 else round(v * n) if fractions else int(v))
    fixed = sum(s for s in sizes if s >= 0)
    if fixed > n:
        raise CocoError(f"--split: asks for {fixed} images, the subset has {n}")
    sizes = [n - fixed if s == -1 else s for s in sizes]
    out, start = {}, 0
    for (name, _), size in zip(splits, sizes, strict=True):
        part = images[start : start + size]
        start += size
        ids = {img["id"] for img in part}
        order = {img["id"]: i for i, img in enumerate(coco["images"])}
        part.sort(key=lambda img: order[img["id"]])
        sub = {k: v for k, v in coco.items()}
        sub["images"] = part
        sub["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
        out[name] = sub
    return out
