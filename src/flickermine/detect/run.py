"""Detecting over whole videos: decoding runs ahead, frames are batched, runs can resume.

While a video is processed its detections go, a chunk at a time, into a hidden folder beside
the output (``.<stem>.detect-partial/``), each chunk written atomically. A run that is stopped
at any point — even by SIGKILL — continues from the last finished chunk and ends with the same
file an uninterrupted run writes; the final file appears atomically and the partial folder is
removed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine._atomic import Busy, atomic_path, atomic_write_text, lock_exclusively, unlock
from flickermine.detect.base import Detector, check_output
from flickermine.errors import ConfigError, OutputExistsError, VideoError
from flickermine.io import write_legacy, write_native
from flickermine.paths import remove_own_files
from flickermine.structures import VideoDetections, clip_xyxy
from flickermine.video import VideoReader, prefetch

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]


def detector_meta(detector: Any) -> dict[str, Any]:
    """What the detection file records about the detector."""
    return {
        "detector": str(getattr(detector, "description", type(detector).__name__)),
        "category": getattr(detector, "category", None),
        "score_threshold": getattr(detector, "score_threshold", None),
        "nms_iou": getattr(detector, "nms_iou", None),
    }


def detect_video(
    video: str | os.PathLike[str],
    detector: Detector | Callable[[list[Any]], list[Any]],
    *,
    batch_size: int = 1,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> VideoDetections:
    """Run ``detector`` on every frame of ``video`` in memory (no files, no resume)."""
    reader = VideoReader(video)
    parts = _detect_frames(reader, detector, 0, batch_size, None, progress, workers=workers)
    return _assemble(reader, detector, parts)


def _detect_frames(
    reader: VideoReader,
    detector: Any,
    start: int,
    batch_size: int,
    on_chunk: Callable[[int, list[tuple[int, np.ndarray, np.ndarray]]], None] | None,
    progress: ProgressCallback | None,
    chunk_frames: int = 0,
    workers: int = 1,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Detections of frames ``start..`` as (frame, xyxy, score); ``on_chunk(end, rows)`` is
    called after every ``chunk_frames`` frames (``end`` exclusive).

    Decoding runs ahead in a background thread; batches go to ``workers`` inference threads
    (torch and ONNX Runtime release the GIL) and their results are taken in frame order.
    """
    source = str(getattr(detector, "description", "detector"))
    rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []
    done = start

    def finish(indices: list[int], future: Future[Any]) -> None:
        nonlocal done
        results = check_output(future.result(), len(indices), source)
        for t, (xyxy, score) in zip(indices, results, strict=True):
            pending.append((t, clip_xyxy(xyxy, reader.width, reader.height), score))
        done = indices[-1] + 1
        if progress is not None:
            progress(len(indices))
        if on_chunk is not None and chunk_frames and (done - start) % chunk_frames == 0:
            on_chunk(done, pending)
            rows.extend(pending)
            pending.clear()

    # A resumed run: the frames before ``start`` are decoded only as far as later ones need.
    frames = prefetch(reader.frames(start=start), size=2 * batch_size * max(1, workers) + 4)
    in_flight: deque[tuple[list[int], Future[Any]]] = deque()
    batch: list[np.ndarray] = []
    indices: list[int] = []
    init = getattr(detector, "thread_init", None)  # e.g. torch's per-thread settings
    with ThreadPoolExecutor(
        max(1, workers), thread_name_prefix="flickermine-detect", initializer=init
    ) as pool:
        try:
            for frame in frames:
                if frame.index < start:
                    continue
                batch.append(frame.bgr)
                indices.append(frame.index)
                if len(batch) >= batch_size:
                    in_flight.append((indices, pool.submit(detector, batch)))
                    batch, indices = [], []
                    while len(in_flight) > 2 * max(1, workers):
                        finish(*in_flight.popleft())
        except VideoError as exc:
            while in_flight:
                finish(*in_flight.popleft())
            if on_chunk is not None and pending:
                on_chunk(done, pending)
            raise VideoError(
                f"{exc}; detections of frames 1..{done} are kept for a later run"
            ) from None
        if batch:
            in_flight.append((indices, pool.submit(detector, batch)))
        while in_flight:
            finish(*in_flight.popleft())
    if on_chunk is not None and pending:
        on_chunk(done, pending)
    rows.extend(pending)
    return rows


def _assemble(
    reader: VideoReader,
    detector: Any,
    parts: list[tuple[int, np.ndarray, np.ndarray]],
    num_frames: int | None = None,
) -> VideoDetections:
    n = num_frames if num_frames is not None else (parts[-1][0] + 1 if parts else 0)
    meta = {"video": str(reader.path), "fps": reader.fps, "width": reader.width,
            "height": reader.height, **detector_meta(detector)}  # fmt: skip
    if not any(len(s) for _, _, s in parts):
        return VideoDetections.empty(n, meta)
    return VideoDetections.from_rows(
        frame=np.concatenate([np.full(len(s), t, np.int64) for t, _, s in parts]),
        xyxy=np.concatenate([b.reshape(-1, 4) for _, b, _ in parts]),
        score=np.concatenate([s for _, _, s in parts]),
        num_frames=n,
        meta=meta,
    )


# ---------------------------------------------------------------------------- resumable files
#: What a run writes into its partial folder (chunks, its marker and their temporary names).
_OWN_CHUNK = re.compile(r"\.?(chunk_\d+_\d+\.parquet|run\.json)(\.\d+-\d+-\d+\.tmp)?")


def partial_dir(out_path: Path) -> Path:
    """Where the chunks of an unfinished run of ``out_path`` live."""
    return out_path.parent / f".{out_path.stem}.detect-partial"


def _write_chunk(
    folder: Path, start: int, end: int, rows: list[tuple[int, np.ndarray, np.ndarray]]
) -> None:
    frame = (
        np.concatenate([np.full(len(s), t, np.int32) for t, _, s in rows])
        if rows
        else np.zeros(0, np.int32)
    )
    boxes = (
        np.concatenate([b.reshape(-1, 4) for _, b, _ in rows])
        if rows
        else np.zeros((0, 4), np.float32)
    )
    score = np.concatenate([s for _, _, s in rows]) if rows else np.zeros(0, np.float32)
    columns = {"frame": frame}
    for k, name in enumerate(("x1", "y1", "x2", "y2")):
        columns[name] = boxes[:, k].astype(np.float32)
    columns["score"] = score.astype(np.float32)
    table = pa.table(columns)
    with atomic_path(folder / f"chunk_{start:09d}_{end:09d}.parquet") as tmp:
        pq.write_table(table, tmp)


def _read_chunks(folder: Path) -> tuple[int, list[tuple[int, np.ndarray, np.ndarray]]]:
    """Rows of the contiguous chunks from frame 0, and the frame after the last of them."""
    end = 0
    rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    for path in sorted(folder.glob("chunk_*.parquet")):
        try:
            a, b = (int(v) for v in path.stem.split("_")[1:])
            if a != end:
                break
            t = pq.read_table(path)
            frame = t.column("frame").to_numpy()
            xyxy = np.stack([t.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], 1)
            score = t.column("score").to_numpy()
        except (ValueError, KeyError, OSError, pa.ArrowException) as exc:
            # Damaged (not by us: chunks are written atomically): redo from its first frame.
            logger.warning("%s: unreadable, its frames are detected again: %s", path, exc)
            break
        for f in range(a, b):
            sel = frame == f
            rows.append((f, xyxy[sel], score[sel]))
        end = b
    return end, rows


def _read_marker(marker: Path) -> Any:
    """What an unfinished run recorded about itself (None if missing or unreadable)."""
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


# Public API: its options are keyword-only, one per command-line flag.
def detect_to_file(  # noqa: PLR0913
    video: str | os.PathLike[str],
    detector: Any,
    out_path: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    chunk_frames: int = 256,
    legacy_txt: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> tuple[VideoDetections, bool]:
    """Detect over ``video`` into the native file ``out_path`` (and ``.txt`` beside it with
    ``legacy_txt``), resuming an interrupted run.

    ``workers`` inference threads run batches concurrently (on a CPU, two threads with one torch
    thread each beat one thread with two); the result does not depend on it.

    Returns:
        The detections and whether they were computed now (False: the file already existed).
    """
    out = Path(out_path)
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected >= 1, got {batch_size}")
    chunk_frames = max(batch_size, (chunk_frames // batch_size) * batch_size)
    reader = VideoReader(video)
    if out.exists() and not overwrite:
        from flickermine.io import read_native

        return read_native(out), False
    # A second run detecting into the same folder (the job started twice) must not add chunks
    # to this one's, nor delete them: the video is locked until it is done or given up.
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / f".{out.stem}.detect.lock"
    try:
        lock = lock_exclusively(lock_path)
    except Busy:
        raise OutputExistsError(
            f"{out}: another run writing into {out.parent} is detecting this video now (it "
            f"holds {lock_path.name}); --shard K/N splits the videos between runs"
        ) from None
    try:
        options = _Options(batch_size, chunk_frames, legacy_txt, overwrite, workers, progress)
        return _detect_locked(video, reader, detector, out, options)
    finally:
        unlock(lock_path, lock)


@dataclass(frozen=True)
class _Options:
    """:func:`detect_to_file`'s options, checked."""

    batch_size: int
    chunk_frames: int
    legacy_txt: bool
    overwrite: bool
    workers: int
    progress: ProgressCallback | None


def _detect_locked(
    video: str | os.PathLike[str],
    reader: VideoReader,
    detector: Any,
    out: Path,
    options: _Options,
) -> tuple[VideoDetections, bool]:
    batch_size, chunk_frames, progress = options.batch_size, options.chunk_frames, options.progress
    folder = partial_dir(out)
    identity = {
        "video": str(Path(video).resolve()),
        "size": reader.path.stat().st_size,
        **detector_meta(detector),
        "batch_size": batch_size,
        "chunk_frames": chunk_frames,
    }
    marker = folder / "run.json"
    if folder.exists() and (options.overwrite or _read_marker(marker) != identity):
        remove_own_files(folder, _OWN_CHUNK)
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        atomic_write_text(marker, json.dumps(identity))
    start, done_rows = _read_chunks(folder)
    if start and progress is not None:
        progress(start)
    if start:
        logger.info("%s: resuming at frame %d", video, start + 1)
    last = {"start": start}

    def on_chunk(end: int, rows: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        _write_chunk(folder, last["start"], end, rows)
        last["start"] = end

    new_rows = _detect_frames(
        reader, detector, start, batch_size, on_chunk, progress, chunk_frames, options.workers
    )
    parts = done_rows + new_rows
    decoded = parts[-1][0] + 1 if parts else 0
    if decoded < reader.num_frames:
        raise VideoError(
            f"{video}: decoding stopped at frame {decoded + 1} of the {reader.num_frames} its "
            f"header announces; detections of frames 1..{decoded} are kept in {folder} "
            "(re-encode the video to detect the rest)"
        )
    dets = _assemble(reader, detector, parts, num_frames=max(decoded, start))
    write_native(dets, out)
    if options.legacy_txt:
        write_legacy(dets, out.with_suffix(".txt"))
    remove_own_files(folder, _OWN_CHUNK)
    return dets, True
