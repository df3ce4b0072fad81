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


SPLIT_UNITS = ("image", "video", "time")


def _video_of(img: dict[str, Any]) -> str:
    mined = img.get("flickermine")
    return str(img.get("video") or (mined.get("video") if isinstance(mined, dict) else "") or "")


def _frame_of(img: dict[str, Any], source: str) -> int:
    mined = img.get("flickermine")
    frame = img.get("frame", mined.get("frame") if isinstance(mined, dict) else None)
    if isinstance(frame, bool) or not isinstance(frame, int):
        raise CocoError(
            f"{source}: image {img.get('id')} has no frame number ('frame'): it cannot be split "
            "by time"
        )
    return frame


def split_images(
    coco: Coco,
    splits: list[tuple[str, float]],
    seed: int = 0,
    *,
    by: str = "image",
    gap: int = 0,
    mined_in_first: bool = True,
    source: str = "annotations",
) -> dict[str, Coco]:
    """Split ``coco`` into named parts (fractions or counts, see :func:`parse_splits`).

    Args:
        by: ``image`` (seeded shuffle of images), ``video`` (whole videos to one part: the
            images' ``video`` fields) or ``time`` (each video's frames in order, the first part
            the earliest, ``gap`` frames left out at every boundary so that near-duplicate
            frames do not leak from one part into the next).
        mined_in_first: images added by ``dataset merge`` (with a ``flickermine`` field) all go
            to the first part (training): a mined frame's labels are the miner's guesses.
    """
    if by not in SPLIT_UNITS:
        raise CocoError(f"--split-by: expected one of {', '.join(SPLIT_UNITS)}, got {by!r}")
    if gap < 0:
        raise CocoError(f"--gap: expected frames >= 0, got {gap}")
    mined = [i for i in coco["images"] if mined_in_first and "flickermine" in i]
    pool = {"images": [i for i in coco["images"] if not (mined_in_first and "flickermine" in i)]}
    if by == "image":
        parts = split_by_image({**coco, **pool}, splits, seed)
    elif by == "video":
        parts = _split_groups(coco, pool["images"], splits, seed)
    else:
        parts = _split_in_time(coco, pool["images"], splits, gap, source)
    if mined:
        first = next(iter(parts))
        ids = {i["id"] for i in parts[first]["images"]} | {i["id"] for i in mined}
        parts[first] = _with_images(coco, [i for i in coco["images"] if i["id"] in ids])
    return parts


def _with_images(coco: Coco, images: list[dict[str, Any]]) -> Coco:
    ids = {img["id"] for img in images}
    sub = dict(coco)
    sub["images"] = images
    sub["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    return sub


def _sizes(splits: list[tuple[str, float]], n: int) -> list[int]:
    fractions = all(0 <= v <= 1 for _, v in splits if v != -1) and (
        any(0 < v < 1 for _, v in splits) or any(isinstance(v, float) for _, v in splits)
    )
    if fractions and sum(v for _, v in splits if v != -1) > 1 + 1e-9:
        raise CocoError("--split: fractions add up to more than 1")
    sizes = [-1 if v == -1 else (round(v * n) if fractions else int(v)) for _, v in splits]
    fixed = sum(x for x in sizes if x >= 0)
    if fixed > n:
        raise CocoError(f"--split: asks for {fixed} images, the subset has {n}")
    return [n - fixed if x == -1 else x for x in sizes]


def _split_groups(
    coco: Coco, images: list[dict[str, Any]], splits: list[tuple[str, float]], seed: int
) -> dict[str, Coco]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for img in images:
        groups.setdefault(_video_of(img) or f"image:{img['id']}", []).append(img)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    sizes = _sizes(splits, len(images))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in splits}
    k = 0
    for g in names:  # whole videos, filling the parts in order
        while k < len(splits) - 1 and len(out[splits[k][0]]) >= sizes[k]:
            k += 1
        out[splits[k][0]] += groups[g]
    order = {img["id"]: i for i, img in enumerate(coco["images"])}
    return {n: _with_images(coco, sorted(v, key=lambda i: order[i["id"]])) for n, v in out.items()}


def _split_in_time(
    coco: Coco, images: list[dict[str, Any]], splits: list[tuple[str, float]], gap: int,
    source: str,
) -> dict[str, Coco]:  # fmt: skip
    by_video: dict[str, list[dict[str, Any]]] = {}
    for img in images:
        by_video.setdefault(_video_of(img), []).append(img)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in splits}
    for frames in by_video.values():
        frames.sort(key=lambda i: _frame_of(i, source))
        start = 0
        for (name, _), size in zip(splits, _sizes(splits, len(frames)), strict=True):
            part = frames[start : start + size]
            start += size
            if part and gap:  # leave out the frames within `gap` of the previous part's end
                last = max((_frame_of(i, source) for v in out.values() for i in v
                            if i in frames), default=None)  # fmt: skip
                if last is not None:
                    part = [i for i in part if _frame_of(i, source) > last + gap]
            out[name] += part
    order = {img["id"]: i for i, img in enumerate(coco["images"])}
    return {n: _with_images(coco, sorted(v, key=lambda i: order[i["id"]])) for n, v in out.items()}


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
