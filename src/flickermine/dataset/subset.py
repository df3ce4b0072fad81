"""Single-category subsets of a COCO file, with seeded negatives and splits (the seed's setup)."""

from __future__ import annotations

import random
from typing import Any

from flickermine.dataset.coco import Coco, CocoError, check_coco, find_category


def parse_splits(text: str | None) -> list[tuple[str, float]]:
    """``"train=0.8,val=0.1,test=0.1"`` (fractions, written with a decimal point) or
    ``"train=5000,val=500"`` (whole numbers of images); one split may be ``rest``. Split names
    become file names (``<name>.json``)."""
    if not text:
        return []
    out: list[tuple[str, float]] = []
    kinds = set()
    for part in text.split(","):
        name, _, value = (p.strip() for p in part.partition("="))
        if not name or not value:
            raise CocoError(f"--split: expected name=value pairs, got {part!r}")
        if any(c in name for c in "/\\") or name.startswith("."):
            raise CocoError(f"--split: {name!r} cannot be a file name (no '/', no leading '.')")
        if name in (n for n, _ in out):
            raise CocoError(f"--split: {name!r} is named twice")
        if value == "rest":
            if any(v == -1 for _, v in out):
                raise CocoError("--split: only one split can be 'rest'")
            out.append((name, -1))
            continue
        if value.isdigit():
            kinds.add("count")
            out.append((name, int(value)))
            continue
        try:
            fraction = float(value)
        except ValueError:
            raise CocoError(f"--split: {value!r} is not a number") from None
        if not 0 <= fraction <= 1:  # also refuses nan
            raise CocoError(
                f"--split: {name}={value}: a fraction is in [0, 1]; a number of images is "
                "written without a decimal point"
            )
        kinds.add("fraction")
        out.append((name, fraction))
    if len(kinds) > 1:
        raise CocoError("--split: give every split as a fraction or every one as a count")
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
    fractions = all(0 <= v <= 1 for _, v in splits if v != -1) and (
        any(0 < v < 1 for _, v in splits) or any(isinstance(v, float) for _, v in splits)
    )
    if not fractions and any(v != int(v) for _, v in splits):
        raise CocoError("--split: a number of images must be a whole number")
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
