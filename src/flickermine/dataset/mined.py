"""Reading mined frames back: the miner's native results or the seed's result ``.txt`` files."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine.dataset.coco import CocoError
from flickermine.errors import ConfigError
from flickermine.paths import inside

#: The miner's verdict for boxes that go into a dataset as objects.
OBJECT_VERDICTS = ("pseudo_positive", "hard_positive")


@dataclass
class MinedFrame:
    """One mined frame: its picture on disk and its boxes (``[x, y, w, h]``)."""

    image: Path
    video: str
    frame: int  # 1-based, as in the file names
    width: int | None
    height: int | None
    positives: list[list[float]] = field(default_factory=list)
    hard_positives: list[list[float]] = field(default_factory=list)
    hard_negatives: list[list[float]] = field(default_factory=list)
    params: dict[str, Any] | None = None
    source: str = ""
    #: Ids of the boxes above, in the same order (``<stem>/<frame>/d<det>`` for detections,
    #: ``<stem>/<frame>/m<k>`` for hard positives; frame 1-based), as the review report and
    #: its decisions name them; empty for the reference's result files.
    positive_ids: list[str] = field(default_factory=list)
    hard_positive_ids: list[str] = field(default_factory=list)
    hard_negative_ids: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Stable unique file name for this frame inside a dataset: the video's name for the
        reader, and a hash of the frame's picture for identity (two videos recorded under one
        name are still two; the same frame merged twice is one)."""
        digest = self.content_digest[:12]
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(self.video).stem).strip(".") or "video"
        return f"mined_{stem}_{digest}_frame{self.frame:06d}{self.image.suffix.lower() or '.jpg'}"

    @functools.cached_property
    def content_digest(self) -> str:
        """SHA-1 of the frame's picture file."""
        try:
            return hashlib.sha1(self.image.read_bytes()).hexdigest()
        except OSError as exc:
            raise CocoError(f"{self.image}: cannot read the mined frame: {exc}") from None


def example_ids(stem: str, frames: Any, dets: Any, verdicts: Any) -> list[str]:
    """The id of each verdict row (rows in frame order, as the table holds them): a detection
    is ``<stem>/<frame number, 1-based>/d<det>``, the ``k``-th hard positive of a frame
    ``<stem>/<frame number>/m<k>``. The review report and ``dataset merge --decisions`` name
    boxes so."""
    out, missed, last = [], 0, None
    for t, det, verdict in zip(frames, dets, verdicts, strict=True):
        number = int(t) + 1
        missed = 0 if number != last else missed
        last = number
        if verdict == "hard_positive":
            out.append(f"{stem}/{number}/m{missed}")
            missed += 1
        else:
            out.append(f"{stem}/{number}/d{int(det)}")
    return out


def read_mined(path: str | os.PathLike[str]) -> list[MinedFrame]:
    """Mined frames from a miner output folder, one video's summary ``<stem>.json``, or a
    seed result ``.txt`` (frames beside it, as the seed wrote them).

    Raises:
        CocoError: unknown input, unreadable results, or a frame image missing on disk.
    """
    p = Path(path)
    if p.is_dir():
        summaries = [
            s for s in sorted(p.glob("*.json")) if (p / f"{s.stem}.verdicts.parquet").exists()
        ]
        if not summaries:
            txts = sorted(p.glob("*.txt"))
            if not txts:
                raise CocoError(f"{p}: no mining results (<video>.json or seed .txt) found")
            return [f for t in txts for f in _read_seed_txt(t)]
        return [f for s in summaries for f in _read_native(s)]
    if p.suffix == ".json":
        return _read_native(p)
    if p.suffix == ".txt":
        return _read_seed_txt(p)
    raise CocoError(f"{p}: expected a mining output folder, a <video>.json summary or a .txt")


def _read_native(summary_path: Path) -> list[MinedFrame]:
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        raise CocoError(f"{summary_path}: unreadable mining summary: {exc}") from None
    if not isinstance(summary, dict):
        raise CocoError(f"{summary_path}: not a mining summary (expected a JSON object)")
    stem = summary_path.stem
    verdicts = summary_path.with_name(f"{stem}.verdicts.parquet")
    if not verdicts.exists():
        raise CocoError(f"{summary_path}: its verdicts file {verdicts.name} is missing")
    try:
        table = pq.read_table(verdicts, columns=["frame", "det", "x1", "y1", "x2", "y2",
                                                  "verdict"])  # fmt: skip
        order = np.argsort(table.column("frame").to_numpy(), kind="stable")
        frame = table.column("frame").to_numpy()[order]
        det = table.column("det").to_numpy()[order]
        verdict = np.asarray(table.column("verdict").to_pylist(), dtype=object)[order]
        xyxy = np.stack([table.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], 1)[order]
        xyxy = xyxy.astype(float)
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
        raise CocoError(f"{verdicts}: unreadable verdicts file: {exc}") from None
    if not np.isfinite(xyxy).all():
        raise CocoError(f"{verdicts}: boxes with NaN or infinite coordinates")
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)
    mined = np.unique(frame[(verdict == "hard_negative") | (verdict == "hard_positive")])
    frames_dir = summary_path.parent / "frames" / stem
    video = str(summary.get("video", stem))
    ids = example_ids(stem, frame, det, verdict)
    out = []
    starts = np.searchsorted(frame, mined, side="left")
    stops = np.searchsorted(frame, mined, side="right")
    for t, start, stop in zip(mined, starts, stops, strict=True):
        rows = range(int(start), int(stop))
        image = frames_dir / f"frame{int(t) + 1}.jpg"
        if not image.is_file():
            raise CocoError(f"{summary_path}: mined frame missing on disk: {image}")
        f = MinedFrame(
            image=image, video=video, frame=int(t) + 1, width=summary.get("width"),
            height=summary.get("height"), params=summary.get("params"), source=str(summary_path),
        )  # fmt: skip
        for r in rows:
            box = [round(float(v), 3) for v in xywh[r]]
            {"pseudo_positive": f.positives, "hard_positive": f.hard_positives,
             "hard_negative": f.hard_negatives}[verdict[r]].append(box)  # fmt: skip
            {"pseudo_positive": f.positive_ids, "hard_positive": f.hard_positive_ids,
             "hard_negative": f.hard_negative_ids}[verdict[r]].append(ids[r])  # fmt: skip
        out.append(f)
    return out


def _read_seed_txt(path: Path) -> list[MinedFrame]:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    out = []
    i = 0
    while i < len(lines):
        name = lines[i]
        try:
            k = int(lines[i + 1])
        except (IndexError, ValueError):
            k = -1
        if k < 0:
            raise CocoError(f"{path}:{i + 2}: expected the number of boxes after {name!r}")
        image = _locate(path, name, i + 1)
        match = _SEED_FRAME.fullmatch(Path(name).name)
        if match is None:
            raise CocoError(f"{path}:{i + 1}: expected a frame named frame<n>.jpg, got {name!r}")
        number = int(match.group(1))
        f = MinedFrame(image=image, video=str(path.parent / Path(name).parent), frame=number,
                       width=None, height=None, source=str(path))  # fmt: skip
        for j in range(k):
            parts = lines[i + 2 + j].split() if i + 2 + j < len(lines) else []
            if len(parts) != 5:
                raise CocoError(f"{path}:{i + 3 + j}: expected 'x y w h flag', got {parts}")
            try:
                box = [float(v) for v in parts[:4]]
                flag = int(float(parts[4]))
            except ValueError:
                raise CocoError(f"{path}:{i + 3 + j}: not numbers: {' '.join(parts)}") from None
            if not all(math.isfinite(v) for v in box) or box[2] < 0 or box[3] < 0:
                raise CocoError(f"{path}:{i + 3 + j}: not a box: {' '.join(parts)}")
            (f.positives if flag else f.hard_negatives).append(box)
        out.append(f)
        i += 2 + k
    return out


_SEED_FRAME = re.compile(r"frame(\d+)\.(?:jpe?g|png)", re.IGNORECASE)


def _locate(txt: Path, name: str, line: int) -> Path:
    """A frame named in a result file: beside it (the seed) or under ``frames/`` (flickermine);
    a name that leaves the result's folder (absolute, ``..``) is refused."""
    try:
        beside = inside(txt.parent, name, "frame path")
    except ConfigError as exc:
        raise CocoError(f"{txt}:{line}: {exc}") from None
    for candidate in (beside, txt.parent / "frames" / name):
        if candidate.is_file():
            return candidate
    raise CocoError(f"{txt}: mined frame missing on disk: {txt.parent / name}")
