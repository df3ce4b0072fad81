"""Detection files: the seed's legacy text format and the native Parquet format.

>>> from flickermine.io import load_detections, save_detections  # doctest: +SKIP
>>> dets = load_detections("video1.txt")  # legacy text, by suffix  # doctest: +SKIP
>>> save_detections(dets, "video1.parquet")  # native                 # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from flickermine.errors import DetectionFileError
from flickermine.io.legacy import read_legacy, write_legacy
from flickermine.io.native import read_native, read_native_meta, write_native
from flickermine.structures import VideoDetections

__all__ = [
    "DETECTION_SUFFIXES",
    "load_detections",
    "read_legacy",
    "read_native",
    "read_native_meta",
    "save_detections",
    "write_legacy",
    "write_native",
]

DETECTION_SUFFIXES = (".parquet", ".txt")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "native"
    if suffix in (".txt", ".dets"):
        return "legacy"
    raise DetectionFileError(
        f"{path}: unknown detection file type {suffix!r}; expected .parquet (native) "
        "or .txt (legacy FRAME NUMBER format)"
    )


def load_detections(path: str | os.PathLike[str]) -> VideoDetections:
    """Read a detection file, choosing the format by suffix (``.parquet`` or ``.txt``)."""
    p = Path(path)
    return read_native(p) if _kind(p) == "native" else read_legacy(p)


def save_detections(dets: VideoDetections, path: str | os.PathLike[str]) -> None:
    """Write a detection file atomically, choosing the format by suffix."""
    p = Path(path)
    if _kind(p) == "native":
        write_native(dets, p)
    else:
        write_legacy(dets, p)
