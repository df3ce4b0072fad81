"""Adding mined frames to a COCO file (docs/method.md §5) and exporting them as a dataset of
their own."""

from __future__ import annotations

import logging
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from flickermine._atomic import atomic_path
from flickermine.dataset.coco import Coco, CocoError, check_coco, find_category
from flickermine.dataset.mined import MinedFrame

logger = logging.getLogger(__name__)

#: Boxes this small or smaller (width or height, pixels) are dropped, as the seed did.
MIN_BOX_SIDE = 10.0


@dataclass
class MergeReport:
    """What a merge added and skipped."""

    images_added: int = 0
    annotations_added: int = 0
    already_present: int = 0
    without_positive_dropped: int = 0
    boxes_too_small: int = 0
    hard_negatives_recorded: int = 0
    rejected_hard_negatives: int = 0
    rejected_hard_positives: int = 0
    rejected_pseudo_positives: int = 0


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a JPEG or PNG from its header (the full decode as a fallback)."""
    with path.open("rb") as fh:
        head = fh.read(65536)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                i += 1
                continue
            marker = head[i + 1]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", head[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + struct.unpack(">H", head[i + 2 : i + 4])[0]
    img = cv2.imread(str(path))
    if img is None:
        raise CocoError(f"{path}: not a readable image")
    return int(img.shape[1]), int(img.shape[0])


def _place(src: Path, dst: Path, link: bool) -> None:
    if dst.exists():
        return
    with atomic_path(dst) as tmp:
        if link:
            tmp.unlink()  # the link takes the reserved name
            try:
                os.link(src, tmp)
            except OSError:
                os.symlink(src.resolve(), tmp)
        else:
            shutil.copyfile(src, tmp)


def _keep(box: list[float], report: MergeReport) -> bool:
    if box[2] <= MIN_BOX_SIDE or box[3] <= MIN_BOX_SIDE:
        report.boxes_too_small += 1
        return False
    return True


def read_decisions(path: str | os.PathLike[str]) -> dict[str, str]:
    """The review decisions a report exported (``decisions.json``): mined example id ->
    ``accepted`` or ``rejected``.

    Raises:
        CocoError: unreadable, not a decisions file, or values other than the two verdicts.
    """
    import json

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CocoError(f"{p}: cannot read the decisions: {exc}") from None
    decisions = data.get("decisions") if isinstance(data, dict) else None
    if not isinstance(decisions, dict):
        raise CocoError(f"{p}: not a decisions file (exported by flickermine report)")
    bad = [k for k, v in decisions.items() if v not in ("accepted", "rejected")]
    if bad:
        raise CocoError(f"{p}: {bad[0]!r}: expected 'accepted' or 'rejected'")
    return {str(k): str(v) for k, v in decisions.items()}


def apply_decisions(
    frames: list[MinedFrame], decisions: dict[str, str], report: MergeReport, source: str
) -> list[MinedFrame]:
    """``frames`` without the rejected boxes: a rejected hard negative is not recorded as one,
    a rejected hard positive or pseudo-positive is not annotated (counted in ``report``).

    Raises:
        CocoError: ids in the decisions that match no mined box (another run's decisions).
    """
    known = {i for f in frames
             for i in f.positive_ids + f.hard_positive_ids + f.hard_negative_ids}  # fmt: skip
    unknown = sorted(set(decisions) - known)
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise CocoError(
            f"{source}: {len(unknown)} decision(s) name no mined example of these inputs "
            f"({', '.join(unknown[:3])}{more}): decisions from another run?"
        )
    for f in frames:
        for boxes, ids, counter in (
            ("positives", "positive_ids", "rejected_pseudo_positives"),
            ("hard_positives", "hard_positive_ids", "rejected_hard_positives"),
            ("hard_negatives", "hard_negative_ids", "rejected_hard_negatives"),
        ):
            kept = [(b, i) for b, i in zip(getattr(f, boxes), getattr(f, ids), strict=True)
                    if decisions.get(i) != "rejected"]  # fmt: skip
            setattr(report, counter, getattr(report, counter) + len(getattr(f, ids)) - len(kept))
            setattr(f, boxes, [b for b, _ in kept])
            setattr(f, ids, [i for _, i in kept])
    return frames


def add_mined_frames(
    coco: Coco,
    frames: list[MinedFrame],
    images_dir: str | os.PathLike[str],
    category: str | int,
    *,
    require_positive: bool = False,
    link: bool = False,
    source: str = "annotations",
) -> MergeReport:
    """Add ``frames`` to ``coco`` in place; copy (or link) their pictures into ``images_dir``.

    New image and annotation ids continue above the largest existing ones (ids >= 1).
    Pseudo-positive and hard-positive boxes become annotations of ``category`` (``area = w*h``,
    ``iscrowd = 0``, no segmentation); hard negatives are recorded in the image's
    ``flickermine`` field only. Frames already present (same stable file name) are skipped.

    Raises:
        CocoError: the category is not in the file.
    """
    cat = find_category(coco, category, source)
    report = MergeReport()
    existing = {img.get("file_name") for img in coco["images"]}
    next_image = 1 + max((int(i["id"]) for i in coco["images"] if _is_int(i["id"])), default=0)
    next_ann = 1 + max((int(a["id"]) for a in coco["annotations"] if _is_int(a["id"])), default=0)
    out_dir = Path(images_dir)
    for f in frames:
        name = f.key
        if name in existing:
            report.already_present += 1
            continue
        objects = [b for b in f.positives + f.hard_positives if _keep(b, report)]
        if require_positive and not objects:
            report.without_positive_dropped += 1
            continue
        width, height = (f.width, f.height) if f.width and f.height else image_size(f.image)
        _place(f.image, out_dir / name, link)
        hard_positive_set = {tuple(b) for b in f.hard_positives}
        coco["images"].append(
            {
                "id": next_image,
                "file_name": name,
                "width": width,
                "height": height,
                "flickermine": {
                    "video": f.video,
                    "frame": f.frame,
                    "source": f.source,
                    "params": f.params,
                    "hard_negatives": f.hard_negatives,
                    "hard_positives": len(f.hard_positives),
                },
            }
        )
        for box in objects:
            ann: dict[str, Any] = {
                "id": next_ann,
                "image_id": next_image,
                "category_id": cat["id"],
                "bbox": box,
                "area": round(box[2] * box[3], 3),
                "iscrowd": 0,
            }
            if tuple(box) in hard_positive_set:
                ann["flickermine"] = "hard_positive"
            coco["annotations"].append(ann)
            next_ann += 1
            report.annotations_added += 1
        report.hard_negatives_recorded += len(f.hard_negatives)
        existing.add(name)
        next_image += 1
        report.images_added += 1
    return report


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def export_mined(
    frames: list[MinedFrame],
    out_dir: str | os.PathLike[str],
    category: str = "object",
    *,
    link: bool = False,
) -> tuple[Coco, MergeReport]:
    """A standalone COCO dataset of ``frames``: ``out_dir/images/`` plus the annotation object
    (the caller writes it, e.g. to ``out_dir/annotations.json``)."""
    coco: Coco = {
        "info": {"description": "frames mined by flickermine"},
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": category, "supercategory": category}],
    }
    report = add_mined_frames(coco, frames, Path(out_dir) / "images", 1, link=link)
    check_coco(coco, str(out_dir))
    return coco, report


# Public API: its options are keyword-only, one per command-line flag.
def merge_files(  # noqa: PLR0913
    annotations: str | os.PathLike[str],
    mined: list[str | os.PathLike[str]],
    images_dir: str | os.PathLike[str],
    category: str | int,
    out: str | os.PathLike[str] | None = None,
    *,
    in_place: bool = False,
    overwrite: bool = False,
    require_positive: bool = False,
    link: bool = False,
    decisions: str | os.PathLike[str] | None = None,
) -> tuple[MergeReport, Path | None]:
    """``flickermine dataset merge``: load, check, add the mined frames, check, write atomically.

    Returns the report and the backup made when writing over the input (``in_place``).

    Raises:
        CocoError: invalid input, unknown category, missing frames, or an output that would
            overwrite a file without permission.
    """
    from flickermine.dataset.coco import load_coco, save_coco
    from flickermine.dataset.mined import read_mined

    src = Path(annotations)
    if in_place:  # through a link, onto the file it points to (the link stays a link)
        src = target = Path(os.path.realpath(src))
    elif out is None:
        raise CocoError("give --out NEW.json, or --in-place to write over the input (backed up)")
    else:
        target = Path(out)
        if target.resolve() == src.resolve():
            raise CocoError(f"{target}: is the input; pass --in-place to write over it")
        if target.exists() and not overwrite:
            raise CocoError(f"{target}: exists; pass --overwrite to replace it")
    frames = [f for m in mined for f in read_mined(m)]
    coco = load_coco(src)
    check_coco(coco, str(src))
    rejected = MergeReport()
    if decisions is not None:
        frames = apply_decisions(frames, read_decisions(decisions), rejected, str(decisions))
    report = add_mined_frames(
        coco, frames, images_dir, category, require_positive=require_positive, link=link,
        source=str(src),
    )  # fmt: skip
    for name in ("rejected_hard_negatives", "rejected_hard_positives", "rejected_pseudo_positives"):
        setattr(report, name, getattr(rejected, name))
    backup = None
    if report.images_added or target != src:
        # The input was checked; the additions carry fresh ids, declared images and category.
        backup = save_coco(coco, target, backup_of=src if in_place else None)
    return report, backup


def remove_mined_frames(coco: Coco) -> int:
    """Remove, in place, the images added by :func:`add_mined_frames` (those with a
    ``flickermine`` field) and their annotations; returns how many images went. Everything
    else is untouched: the file as it was before merging, for a baseline."""
    mined = {img["id"] for img in coco["images"] if "flickermine" in img}
    coco["images"] = [img for img in coco["images"] if img["id"] not in mined]
    coco["annotations"] = [a for a in coco["annotations"] if a.get("image_id") not in mined]
    return len(mined)
