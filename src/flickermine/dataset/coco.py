"""COCO annotation files: load, check, save — editing, never rebuilding.

A file is kept as the parsed JSON object (dictionaries keep their key order), so a load/save
round trip loses nothing: unknown keys, ids and order survive. Writing is atomic (temporary file,
then rename). :func:`check_coco` applies detectron2-style checks and names the offending id.
"""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_path
from flickermine.errors import FlickermineError

try:  # orjson is several times faster on files the size of COCO train2017
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; stay usable without it
    orjson = None  # type: ignore[assignment]

Coco = dict[str, Any]


class CocoError(FlickermineError, ValueError):
    """An invalid COCO file or a request that does not fit it."""


def load_coco(path: str | os.PathLike[str]) -> Coco:
    """Parse a COCO JSON file (the object, untouched).

    Raises:
        CocoError: missing file, not JSON, not a COCO object (``images``, ``annotations``,
            ``categories`` lists).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CocoError(f"{p}: annotation file not found") from None
    except OSError as exc:
        raise CocoError(f"{p}: cannot read annotation file: {exc}") from None
    # Millions of new containers would trigger the cyclic garbage collector over and over.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        coco = orjson.loads(data) if orjson is not None else json.loads(data)
    except (ValueError, TypeError) as exc:
        try:  # orjson refuses some valid JSON (e.g. integers beyond 64 bits)
            coco = json.loads(data)
        except ValueError:
            raise CocoError(f"{p}: not valid JSON: {exc}") from None
    finally:
        if gc_was_enabled:
            gc.enable()
    if not isinstance(coco, dict):
        raise CocoError(f"{p}: expected a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise CocoError(f"{p}: missing or non-list {key!r}")
    return coco


def dumps_coco(coco: Coco) -> bytes:
    """Compact JSON bytes of ``coco``."""
    if orjson is not None:
        try:
            return bytes(orjson.dumps(coco))
        except TypeError:
            pass
    return json.dumps(coco, ensure_ascii=False, separators=(",", ":")).encode()


def save_coco(
    coco: Coco, path: str | os.PathLike[str], *, backup_of: str | os.PathLike[str] | None = None
) -> Path | None:
    """Write ``coco`` to ``path`` atomically.

    Args:
        backup_of: when writing over an existing file, copy it first to a backup
            (``<name>.bak``, or ``.bak.N`` if taken) and return the backup's path.
    """
    target = Path(path)
    backup = None
    if backup_of is not None and target.exists():
        backup = target.with_name(target.name + ".bak")
        n = 1
        while backup.exists():
            backup = target.with_name(f"{target.name}.bak.{n}")
            n += 1
        shutil.copy2(target, backup)
    data = dumps_coco(coco)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return backup


def check_coco(coco: Coco, source: str = "annotations") -> None:
    """Check ids and references: unique image/annotation/category ids, every annotation's image
    and category declared, ``bbox`` of 4 finite numbers with non-negative size.

    Raises:
        CocoError: naming ``source`` and the offending id.
    """
    images = coco["images"]
    image_ids: set[Any] = set()
    for img in images:
        iid = img.get("id") if isinstance(img, dict) else None
        if iid is None:
            raise CocoError(f"{source}: an image record has no id: {str(img)[:80]}")
        if iid in image_ids:
            raise CocoError(f"{source}: duplicate image id {iid}")
        image_ids.add(iid)
    cat_ids: set[Any] = set()
    for cat in coco["categories"]:
        cid = cat.get("id") if isinstance(cat, dict) else None
        if cid is None or cid in cat_ids:
            raise CocoError(f"{source}: missing or duplicate category id {cid}")
        cat_ids.add(cid)
    ann_ids: set[Any] = set()
    for ann in coco["annotations"]:
        aid = ann.get("id")
        if aid is None:
            raise CocoError(f"{source}: an annotation has no id: {str(ann)[:80]}")
        if aid in ann_ids:
            raise CocoError(f"{source}: duplicate annotation id {aid}")
        ann_ids.add(aid)
        if ann.get("image_id") not in image_ids:
            raise CocoError(
                f"{source}: annotation {aid} refers to unknown image {ann.get('image_id')}"
            )
        if ann.get("category_id") not in cat_ids:
            raise CocoError(
                f"{source}: annotation {aid} has undeclared category {ann.get('category_id')}"
            )
        bbox = ann.get("bbox")
        if bbox is not None and not _valid_bbox(bbox):
            raise CocoError(f"{source}: annotation {aid} has an invalid bbox {bbox}")


_NUMBER_TYPES = (int, float)


def _valid_bbox(bbox: Any) -> bool:
    """A list of four finite numbers with non-negative width and height."""
    if type(bbox) is not list or len(bbox) != 4:
        return False
    for v in bbox:
        if type(v) not in _NUMBER_TYPES or not -math.inf < v < math.inf:
            return False
    return bool(bbox[2] >= 0 and bbox[3] >= 0)


def find_category(coco: Coco, category: str | int, source: str = "annotations") -> Coco:
    """The category record matching a name or an id (``"18"`` is an id)."""
    cats = coco["categories"]
    text = str(category)
    for cat in cats:
        if str(cat.get("id")) == text or cat.get("name") == text:
            return dict(cat)
    names = ", ".join(f"{c.get('id')}:{c.get('name')}" for c in cats[:20])
    raise CocoError(f"{source}: no category {category!r}; it has {names}")
