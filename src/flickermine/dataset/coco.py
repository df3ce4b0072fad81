"""COCO annotation files: load, check, save — editing, never rebuilding.

A file is kept as the parsed JSON object (dictionaries keep their key order), so a load/save
round trip loses nothing: unknown keys, ids and order survive. Writing is atomic (temporary file,
then rename). :func:`check_coco` applies detectron2-style checks and names the offending id.
"""

from __future__ import annotations

import gc
import json
import math
import numbers
import os
import re
import shutil
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_path
from flickermine.errors import CocoError, ConfigError
from flickermine.paths import inside

try:  # orjson is several times faster on files the size of COCO train2017
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; stay usable without it
    orjson = None  # type: ignore[assignment]

Coco = dict[str, Any]
_LONG_DIGITS = re.compile(rb"\d{20}")


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
    # orjson reads integers beyond 64 bits as floats (10**30 would come back as 1e+30): a
    # file with a run of 20 digits is read by the standard library, which keeps them exact.
    fast = orjson is not None and _LONG_DIGITS.search(data) is None
    try:
        coco = orjson.loads(data) if fast else json.loads(data)
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
    """Check the structure, ids and references: ``images``, ``annotations`` and
    ``categories`` lists of objects with unique integer or string ids, category names that
    are text, every annotation's image and category declared, a ``bbox`` of 4 finite numbers
    with non-negative size, ``area`` (where given) a finite non-negative number, ``iscrowd``
    (where given) 0 or 1.

    Raises:
        CocoError: naming ``source`` and the offending id.
    """
    if not isinstance(coco, dict):
        raise CocoError(f"{source}: expected a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise CocoError(f"{source}: missing or non-list {key!r}")
    images = coco["images"]
    image_ids: set[Any] = set()
    for img in images:
        iid = img.get("id") if isinstance(img, dict) else None
        if not _valid_id(iid):
            raise CocoError(f"{source}: an image record has no valid id: {str(img)[:80]}")
        if iid in image_ids:
            raise CocoError(f"{source}: duplicate image id {iid}")
        image_ids.add(iid)
    cat_ids: set[Any] = set()
    for cat in coco["categories"]:
        cid = cat.get("id") if isinstance(cat, dict) else None
        if not _valid_id(cid) or cid in cat_ids:
            raise CocoError(f"{source}: missing, invalid or duplicate category id {cid}")
        if not isinstance(cat.get("name", ""), str):
            raise CocoError(f"{source}: category {cid} has a name that is not text")
        cat_ids.add(cid)
    ann_ids: set[Any] = set()
    for ann in coco["annotations"]:
        aid = ann.get("id") if isinstance(ann, dict) else None
        if not _valid_id(aid):
            raise CocoError(f"{source}: an annotation has no valid id: {str(ann)[:80]}")
        if aid in ann_ids:
            raise CocoError(f"{source}: duplicate annotation id {aid}")
        ann_ids.add(aid)
        _check_annotation(ann, image_ids, cat_ids, source)


def _check_annotation(
    ann: dict[str, Any], image_ids: set[Any], cat_ids: set[Any], source: str
) -> None:
    """One annotation's references and values (see :func:`check_coco`)."""
    aid = ann["id"]
    image_id = ann.get("image_id")
    if not _valid_id(image_id) or image_id not in image_ids:
        raise CocoError(f"{source}: annotation {aid} refers to unknown image {image_id}")
    category_id = ann.get("category_id")
    if not _valid_id(category_id) or category_id not in cat_ids:
        raise CocoError(
            f"{source}: annotation {aid} has undeclared category {ann.get('category_id')}"
        )
    bbox = ann.get("bbox")
    if not _valid_bbox(bbox):
        raise CocoError(f"{source}: annotation {aid} has a missing or invalid bbox {bbox}")
    area = ann.get("area", 0)
    if not _finite(area) or area < 0:
        raise CocoError(f"{source}: annotation {aid} has an invalid area {area!r}")
    if ann.get("iscrowd", 0) not in (0, 1):
        raise CocoError(f"{source}: annotation {aid} has iscrowd {ann['iscrowd']!r} (0 or 1)")


_NUMBER_TYPES = (int, float)


def _finite(value: Any) -> bool:
    """A finite real number (JSON's int and float, or numpy's from a library caller)."""
    # JSON's own types first: this runs for every number of every annotation.
    if type(value) not in _NUMBER_TYPES and (
        isinstance(value, bool) or not isinstance(value, numbers.Real)
    ):
        return False
    return bool(-math.inf < value < math.inf)


def check_results(results: Any, image_ids: set[Any], source: str = "detections") -> None:
    """Check COCO detection results: a list of objects with a known ``image_id``, an id-like
    ``category_id``, a valid ``bbox`` and a finite ``score``.

    Raises:
        CocoError: naming ``source`` and the offending entry (0-based).
    """
    if not isinstance(results, list):
        raise CocoError(f"{source}: expected a list of COCO results")
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            raise CocoError(f"{source}: result {i} is not an object: {str(res)[:80]}")
        image_id = res.get("image_id")
        if not _valid_id(image_id) or image_id not in image_ids:
            raise CocoError(f"{source}: result {i} refers to unknown image {image_id!r}")
        if not _valid_id(res.get("category_id")):
            raise CocoError(f"{source}: result {i} has an invalid category_id")
        if not _valid_bbox(res.get("bbox")):
            raise CocoError(f"{source}: result {i} has an invalid bbox {res.get('bbox')!r}")
        score = res.get("score")
        if not _finite(score):
            raise CocoError(f"{source}: result {i} has an invalid score {score!r}")


def _valid_id(value: Any) -> bool:
    """COCO ids are integers (numpy's too, from a library caller); strings are accepted as
    well (some converters write them)."""
    return type(value) in (int, str) or (
        isinstance(value, numbers.Integral) and not isinstance(value, bool)
    )


def _valid_bbox(bbox: Any) -> bool:
    """A list of four finite numbers with non-negative width and height."""
    if type(bbox) is not list or len(bbox) != 4:
        return False
    for v in bbox:
        if not _finite(v):
            return False
    return bool(bbox[2] >= 0 and bbox[3] >= 0)


def image_file(images_dir: str | os.PathLike[str], img: dict[str, Any], source: str) -> Path:
    """Where the image of a record is: ``images_dir / file_name``.

    Raises:
        CocoError: the record has no usable ``file_name``, or one that leaves ``images_dir``
            (absolute, ``..``), naming ``source`` and the id.
    """
    name = img.get("file_name")
    if not isinstance(name, str) or not name:
        raise CocoError(f"{source}: image {img.get('id')} has no file_name")
    try:
        return inside(images_dir, name, f"image {img.get('id')}: file_name")
    except ConfigError as exc:
        raise CocoError(f"{source}: {exc}") from None


def find_category(coco: Coco, category: str | int, source: str = "annotations") -> Coco:
    """The category record matching a name or an id (``"18"`` is an id)."""
    cats = coco["categories"]
    text = str(category)
    for cat in cats:
        if str(cat.get("id")) == text or cat.get("name") == text:
            return dict(cat)
    if not cats:
        raise CocoError(
            f"{source}: no category {category!r}: the file declares no categories; add "
            f'{{"id": 1, "name": "{category}"}} to its "categories"'
        )
    names = ", ".join(f"{c.get('id')}:{c.get('name')}" for c in cats[:20])
    more = f" and {len(cats) - 20} more" if len(cats) > 20 else ""
    raise CocoError(f"{source}: no category {category!r}; it has {names}{more}")
