"""Native detection files (docs/method.md §2.2): Parquet (zstd), one row per box, metadata
in the footer.

Columns: ``frame`` (int32, 0-based), ``x1 y1 x2 y2 score`` (float32), ``label`` (int32 category
id, or a category name when written by other tools). Frames without boxes have no rows; the frame
count lives in the metadata under ``num_frames``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine._atomic import atomic_path
from flickermine.errors import DetectionFileError, FlickermineError, InvalidDetectionsError
from flickermine.structures import VideoDetections

META_KEY = b"flickermine"
FORMAT_VERSION = 1
COLUMNS = ("frame", "x1", "y1", "x2", "y2", "score", "label")


def to_table(dets: VideoDetections) -> pa.Table:
    """The Arrow table (with metadata) for ``dets``."""
    meta = {"format_version": FORMAT_VERSION, **dets.meta, "num_frames": dets.num_frames}
    table = pa.table(
        {
            "frame": pa.array(dets.frame.astype(np.int32)),
            "x1": pa.array(dets.xyxy[:, 0]),
            "y1": pa.array(dets.xyxy[:, 1]),
            "x2": pa.array(dets.xyxy[:, 2]),
            "y2": pa.array(dets.xyxy[:, 3]),
            "score": pa.array(dets.score),
            "label": pa.array(dets.class_id),
        }
    )
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, default=str).encode()})


def write_native(dets: VideoDetections, path: str | os.PathLike[str]) -> None:
    """Write ``dets`` atomically as a zstd-compressed Parquet file."""
    with atomic_path(path) as tmp:
        pq.write_table(to_table(dets), tmp, compression="zstd")


def read_native(path: str | os.PathLike[str]) -> VideoDetections:
    """Read a native Parquet detection file.

    Raises:
        DetectionFileError: missing file, not Parquet, missing columns or metadata, bad values.
    """
    p = Path(path)
    if not p.is_file():
        raise DetectionFileError(f"{p}: detection file not found")
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise DetectionFileError(f"{p}: not a readable Parquet file: {exc}") from None
    try:
        return _from_table(p, table)
    except FlickermineError:
        raise
    except (pa.ArrowException, ValueError, TypeError, KeyError, OverflowError) as exc:
        # A damaged file can still parse as Parquet: undecodable names or metadata, odd types.
        raise DetectionFileError(
            f"{p}: damaged detection file ({type(exc).__name__}: {exc})"
        ) from None


def _from_table(p: Path, table: pa.Table) -> VideoDetections:
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DetectionFileError(
            f"{p}: missing column(s) {', '.join(missing)}; expected {' '.join(COLUMNS)}"
        )
    meta = _read_meta(p, table.schema.metadata or {})
    num_frames = meta.pop("num_frames", None)
    if num_frames is not None and (
        isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 0
    ):
        raise DetectionFileError(
            f"{p}: metadata num_frames must be a non-negative integer, got {num_frames!r}"
        )
    label = table.column("label")
    if pa.types.is_string(label.type) or pa.types.is_dictionary(label.type):
        names = label.to_pylist()
        vocab = sorted(set(names), key=names.index)
        meta.setdefault("categories", {str(i): name for i, name in enumerate(vocab)})
        lookup = {name: i for i, name in enumerate(vocab)}
        class_id = np.array([lookup[n] for n in names], np.int32)
    else:
        raw = label.to_numpy(zero_copy_only=False)
        if (raw.dtype.kind == "f" and raw.size) and (
            not np.isfinite(raw).all() or (raw != np.round(raw)).any()
        ):
            raise DetectionFileError(f"{p}: column label holds NaN or non-integer values")
        if raw.size and raw.dtype.kind in "fiu" and (raw.min() < -(2**31) or raw.max() >= 2**31):
            raise DetectionFileError(f"{p}: column label holds values beyond 32-bit integers")
        class_id = raw.astype(np.int32)

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False)

    try:
        return VideoDetections.from_rows(
            frame=col("frame"),
            xyxy=np.stack([col("x1"), col("y1"), col("x2"), col("y2")], axis=1),
            score=col("score"),
            class_id=class_id,
            num_frames=num_frames,
            meta=meta,
        )
    except InvalidDetectionsError as exc:
        where = " in its metadata" if "(num_frames)" in str(exc) else ""
        raise DetectionFileError(f"{p}: {exc}{where}") from None


def read_native_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a native detection file (its schema only; the rows are not read)."""
    p = Path(path)
    try:
        schema = pq.read_schema(p)
    except (pa.ArrowException, OSError) as exc:
        raise DetectionFileError(f"{p}: not a readable Parquet file: {exc}") from None
    return _read_meta(p, schema.metadata or {})


def _read_meta(p: Path, raw: dict[bytes, bytes]) -> dict[str, Any]:
    if META_KEY not in raw:
        return {}
    try:
        meta = json.loads(raw[META_KEY])
    except json.JSONDecodeError as exc:
        raise DetectionFileError(f"{p}: metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise DetectionFileError(f"{p}: metadata must be a JSON object")
    return meta
