"""Everything the miner writes for one video, streamed so memory stays bounded.

In the output folder ``DIR``, for a video with stem ``S``:

* ``DIR/S.txt`` — the seed's result format: for every frame with a hard negative (or a hard
  positive, when mined), ``S/frame<n>.jpg`` (1-based), the box count, and ``x y w h flag`` lines
  (1 = pseudo-positive or hard positive, 0 = hard negative);
* ``DIR/frames/S/frame<n>.jpg`` — those frames, untouched;
* ``DIR/visualizations/S/frame<n>.jpg`` — the same frames with verdicts drawn;
* ``DIR/S.verdicts.parquet`` — one row per valid detection of every examined frame (``frame``
  0-based, ``frame_number`` 1-based as in the picture names): its box,
  score, verdict and the reason; plus one row per hard positive (``det = -1``, verdict
  ``hard_positive``, with its gap length, support on each side and similarity);
* ``DIR/S.json`` — parameters and counts, written last: its presence marks the video as done.

Every file appears atomically (temporary name, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine._atomic import (
    Busy,
    atomic_write_bytes,
    atomic_write_text,
    lock_exclusively,
    unlock,
)
from flickermine.errors import MiningOutputError, OutputExistsError
from flickermine.mine.flicker import Exclusion, FrameVerdicts, Support
from flickermine.mine.hardpos import HardPositive
from flickermine.paths import remove_own_files
from flickermine.report.draw import draw_verdicts

_EXCLUSION_TEXT = {
    Exclusion.CONFIDENT: "not a candidate: confident score",
    Exclusion.SMALL: "not a candidate: smaller than min_area",
    Exclusion.BORDER: "not a candidate: near border",
}
_CANDIDATE = int(Exclusion.CANDIDATE)  # a plain int: comparing arrays with an enum is slow
_DIRECTION_FIELDS = ("before", "before_offset", "after", "after_offset")


class _Rows(NamedTuple):
    """A frame's verdicts as kept for the verdict table (:class:`FrameVerdicts` without the
    frame, whose images must not be kept alive)."""

    frame_index: int
    det_index: np.ndarray
    xyxy: np.ndarray
    score: np.ndarray
    exclusion: np.ndarray
    before: np.ndarray
    after: np.ndarray
    before_offset: np.ndarray
    after_offset: np.ndarray
    hard_negative: np.ndarray
    hard_positives: tuple[HardPositive, ...]
    size_ratio: np.ndarray | None
    size_outlier: np.ndarray | None


_BATCH_ROWS = 4096  # rows per verdict-table write: memory stays bounded, work spread out
_PICTURES_AHEAD = 4
JPEG_QUALITY = 95


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of a BGR image ``(H, W, 3)``."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def output_paths(out_dir: Path, stem: str) -> dict[str, Path]:
    """Where each output of video ``stem`` goes."""
    return {
        "result_txt": out_dir / f"{stem}.txt",
        "verdicts": out_dir / f"{stem}.verdicts.parquet",
        "summary": out_dir / f"{stem}.json",
        "frames": out_dir / "frames" / stem,
        "visualizations": out_dir / "visualizations" / stem,
    }


#: The pictures the miner writes into ``frames/S`` and ``visualizations/S`` (and their
#: temporary names): the only files its clean-up deletes there.
OWN_PICTURE = re.compile(r"\.?frame\d+\.jpg(\.\d+-\d+-\d+\.tmp)?")


def remove_outputs(out_dir: Path, stem: str) -> None:
    """Delete what an earlier run wrote for ``stem``: its files, and the frame pictures in its
    picture folders (a folder is removed only when nothing else is left in it)."""
    for key, path in output_paths(out_dir, stem).items():
        if key in ("frames", "visualizations"):
            remove_own_files(path, OWN_PICTURE)
        elif path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)


def partial_paths(out_dir: Path, stem: str) -> tuple[Path, Path]:
    """The files of ``stem`` being written (renamed to their names when the video is done)."""
    return out_dir / f".{stem}.txt.partial", out_dir / f".{stem}.verdicts.parquet.partial"


def discard_outputs(out_dir: Path, stem: str) -> None:
    """Delete everything of ``stem``, finished or partial (a video that did not finish: it has
    complete outputs or none)."""
    for path in partial_paths(out_dir, stem):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        remove_outputs(out_dir, stem)
    for folder in ("frames", "visualizations"):  # left empty by this video alone
        with contextlib.suppress(OSError):
            (out_dir / folder).rmdir()


def lock_path(out_dir: Path, stem: str) -> Path:
    """The lock held while ``stem`` is mined (see :class:`VideoResultWriter`)."""
    return out_dir / f".{stem}.lock"


def discard_unclaimed(out_dir: Path, stem: str) -> None:
    """:func:`discard_outputs`, unless another run is mining ``stem`` now (it holds the lock):
    what a dead worker left half written, but not what someone else writes in its place."""
    try:
        fd = lock_exclusively(lock_path(out_dir, stem))
    except Busy:
        return
    try:
        discard_outputs(out_dir, stem)
    finally:
        unlock(lock_path(out_dir, stem), fd)


def existing_outputs(out_dir: Path, stem: str) -> list[Path]:
    """Outputs of ``stem`` that already exist."""
    return [p for p in output_paths(out_dir, stem).values() if p.exists()]


def mined_outputs(mined: str | os.PathLike[str]) -> list[tuple[Path, dict[str, Any]]]:
    """``(verdict table, summary)`` of every video of a mining output folder (or of the one
    video whose summary ``S.json`` is given), in name order.

    Raises:
        MiningOutputError: not a mining output, an unreadable summary, missing verdicts.
    """
    p = Path(mined)
    if p.is_file() and p.suffix == ".json":
        summaries = [p]
    elif p.is_dir():
        summaries = [
            s for s in sorted(p.glob("*.json")) if (p / f"{s.stem}.verdicts.parquet").exists()
        ]
        if not summaries:
            raise MiningOutputError(f"{p}: not a mining output (no <video>.json with its verdicts)")
    else:
        raise MiningOutputError(f"{p}: expected a mining output folder or a <video>.json summary")
    out = []
    for s in summaries:
        try:
            summary = json.loads(s.read_text())
        except (OSError, ValueError) as exc:
            raise MiningOutputError(f"{s}: unreadable mining summary: {exc}") from None
        verdicts = s.with_name(f"{s.stem}.verdicts.parquet")
        if not isinstance(summary, dict) or not verdicts.is_file():
            raise MiningOutputError(f"{s}: not a mining summary with its verdict table")
        out.append((verdicts, summary))
    return out


def _direction_text(kind: int, offset: int) -> str:
    if kind == Support.NOT_SEARCHED:
        return ""
    if kind == Support.NONE:
        return "none"
    name = {Support.OVERLAP: "overlap", Support.APPEARANCE: "appearance"}.get(
        Support(kind), "motion"
    )
    return f"{name}@{offset:+d}"


def reason(exclusion: int, before: int, before_off: int, after: int, after_off: int) -> str:
    """Human-readable reason for one verdict."""
    if exclusion != Exclusion.CANDIDATE:
        return _EXCLUSION_TEXT[Exclusion(exclusion)]
    for kind, off in ((before, before_off), (after, after_off)):
        if kind == Support.OVERLAP:
            return f"supported at t{off:+d} by overlap"
        if kind == Support.APPEARANCE:
            return f"appearance changed at t{off:+d}"
        if kind == Support.MOTION:
            return "supported: its picture moves through the frames around it"
    return "hard negative: no support on either side"


class VideoResultWriter:
    """Writes one video's mining outputs as verdicts arrive (see module docstring)."""

    def __init__(self, out_dir: Path, stem: str, params: dict[str, Any], *, overwrite: bool):
        self.out_dir = Path(out_dir)
        self.stem = stem
        self.paths = output_paths(self.out_dir, stem)
        # Held until the video is finished or given up: a second run writing into the same
        # folder (started twice, or two --resume runs) must not mine it at the same time.
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock_path = lock_path(self.out_dir, stem)
        try:
            self._lock_fd = lock_exclusively(self._lock_path)
        except Busy:
            raise OutputExistsError(
                f"{self.out_dir / stem}: another run writing into {self.out_dir} is mining "
                f"this video now (it holds .{stem}.lock); --shard K/N splits the videos "
                "between runs"
            ) from None
        found = existing_outputs(self.out_dir, stem)
        if found and not overwrite:
            self._unlock()
            raise OutputExistsError(
                f"{found[0]}: output of an earlier run exists; pass overwrite=True "
                "(--overwrite) to replace it or resume (--resume) to keep finished videos"
            )
        self.params = params
        self._tmp_txt, self._tmp_verdicts = partial_paths(self.out_dir, stem)
        try:
            self._open()
        except BaseException:  # even Ctrl-C here leaves no partial outputs
            if getattr(self, "_txt", None) is not None:
                self._txt.close()
            self._remove_all()
            self._unlock()
            raise

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        unlock(self._lock_path, fd)

    def _open(self) -> None:
        remove_outputs(self.out_dir, self.stem)
        self.paths["frames"].mkdir(parents=True, exist_ok=True)
        self.paths["visualizations"].mkdir(parents=True, exist_ok=True)
        self._txt = self._tmp_txt.open("w", encoding="utf-8")
        self._schema = pa.schema(
            [
                ("frame", pa.int32()),
                ("frame_number", pa.int32()),
                ("det", pa.int32()),
                ("x1", pa.float32()),
                ("y1", pa.float32()),
                ("x2", pa.float32()),
                ("y2", pa.float32()),
                ("score", pa.float32()),
                ("candidate", pa.bool_()),
                ("verdict", pa.string()),
                ("reason", pa.string()),
                ("before", pa.string()),
                ("after", pa.string()),
                ("gap", pa.int16()),
                ("support_before", pa.int32()),
                ("support_after", pa.int32()),
                ("similarity", pa.float32()),
                ("size_ratio", pa.float32()),
            ],
            metadata={b"flickermine": json.dumps({"params": self.params}).encode()},
        )
        self._parquet = pq.ParquetWriter(self._tmp_verdicts, self._schema, compression="zstd")
        self._rows: list[_Rows] = []
        # Pictures are encoded and written in a background thread (JPEG encoding and file
        # writes release the GIL), in order, a few frames behind the miner.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="flickermine-writer")
        # Held while a picture is written and while an aborted video's outputs are removed:
        # a picture written late would otherwise bring back the folder just removed.
        self._write_lock = threading.Lock()
        self._aborted = False
        self._pictures: deque[Future[None]] = deque()
        self._pending_rows = 0
        self.counts = {
            "frames_examined_with_detections": 0,
            "valid_detections_examined": 0,
            "candidates": 0,
            "hard_negatives": 0,
            "hard_positives": 0,
            "frames_written": 0,
        }

    def add(self, fv: FrameVerdicts) -> None:
        """Record one frame's verdicts; write its pictures if it holds a hard negative."""
        c = self.counts
        c["frames_examined_with_detections"] += 1
        c["valid_detections_examined"] += len(fv.score)
        c["candidates"] += int(np.count_nonzero(fv.exclusion == _CANDIDATE))
        n_hn = int(np.count_nonzero(fv.hard_negative))
        c["hard_negatives"] += n_hn
        c["hard_positives"] += len(fv.hard_positives)
        # Keep the arrays only: holding the frame itself would keep decoded images alive.
        self._rows.append(
            _Rows(fv.index, fv.det_index, fv.xyxy, fv.score, fv.exclusion, fv.before, fv.after,
                  fv.before_offset, fv.after_offset, fv.hard_negative, fv.hard_positives,
                  fv.size_ratio, fv.size_outlier)
        )  # fmt: skip
        self._pending_rows += len(fv.score)
        if self._pending_rows >= _BATCH_ROWS:
            self._flush()
        if n_hn or fv.hard_positives:
            self._pictures.append(self._pool.submit(self._write_frame, fv))
            while self._pictures and (
                len(self._pictures) > _PICTURES_AHEAD or self._pictures[0].done()
            ):
                self._pictures.popleft().result()  # re-raises a failed write here

    def _write_frame(self, fv: FrameVerdicts) -> None:
        name = f"frame{fv.index + 1}.jpg"
        image = fv.frame.bgr
        original = encode_jpeg(image)
        hp_boxes = np.array([hp.box for hp in fv.hard_positives]).reshape(-1, 4)
        picture = encode_jpeg(draw_verdicts(image, fv.xyxy, fv.score, fv.hard_negative, hp_boxes))
        # Hard positives are objects: flag 1 like the pseudo-positives (the seed knew 0 and 1).
        boxes = np.concatenate([fv.xyxy.astype(np.float64), hp_boxes])
        flags = [0 if hn else 1 for hn in fv.hard_negative] + [1] * len(hp_boxes)
        lines = [f"{self.stem}/{name}", str(len(flags))]
        for (x1, y1, x2, y2), flag in zip(boxes, flags, strict=True):
            lines.append(f"{x1:f} {y1:f} {x2 - x1:f} {y2 - y1:f} {flag}")
        with self._write_lock:
            if self._aborted:
                return
            atomic_write_bytes(self.paths["frames"] / name, original)
            atomic_write_bytes(self.paths["visualizations"] / name, picture)
            self._txt.write("\n".join(lines) + "\n")
            self.counts["frames_written"] += 1

    def _flush(self) -> None:
        if not self._rows:
            return
        rows = self._rows
        frame = np.concatenate([np.full(len(r.score), r.frame_index, np.int32) for r in rows])
        xyxy = np.concatenate([r.xyxy for r in rows])
        exclusion = np.concatenate([r.exclusion for r in rows])
        hn = np.concatenate([r.hard_negative for r in rows])
        # Texts for the few distinct combinations of codes, then spread to the rows.
        codes = np.stack(
            [exclusion]
            + [np.concatenate([getattr(r, k) for r in rows]) for k in _DIRECTION_FIELDS],
            axis=1,
        ).astype(np.int64)
        unique, inverse = np.unique(codes, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        combos = unique.tolist()
        reasons = np.array([reason(*c) for c in combos], object)[inverse]
        ratio = np.concatenate(
            [r.size_ratio if r.size_ratio is not None else np.full(len(r.score), np.nan)
             for r in rows]
        ).astype(np.float32)  # fmt: skip
        outlier = np.concatenate(
            [r.size_outlier if r.size_outlier is not None else np.zeros(len(r.score), bool)
             for r in rows]
        )  # fmt: skip
        for i in np.flatnonzero(outlier):
            reasons[i] = f"hard negative: {ratio[i]:.2f} times the height of the scene's boxes here"
        befores = np.array([_direction_text(c[1], c[2]) for c in combos], object)[inverse]
        afters = np.array([_direction_text(c[3], c[4]) for c in combos], object)[inverse]
        hps = [hp for r in rows for hp in r.hard_positives]
        n_det = len(frame)
        table = pa.table(
            {
                "frame": frame,
                "frame_number": frame + 1,
                "det": np.concatenate([r.det_index for r in rows]).astype(np.int32),
                "x1": xyxy[:, 0],
                "y1": xyxy[:, 1],
                "x2": xyxy[:, 2],
                "y2": xyxy[:, 3],
                "score": np.concatenate([r.score for r in rows]),
                "candidate": exclusion == Exclusion.CANDIDATE,
                "verdict": np.where(hn, "hard_negative", "pseudo_positive"),
                "reason": reasons,
                "before": befores,
                "after": afters,
                "gap": pa.nulls(n_det, pa.int16()),
                "support_before": pa.nulls(n_det, pa.int32()),
                "support_after": pa.nulls(n_det, pa.int32()),
                "similarity": pa.nulls(n_det, pa.float32()),
                "size_ratio": pa.array(ratio, pa.float32(), from_pandas=True),
            },
            schema=self._schema,
        )
        if hps:
            table = pa.concat_tables([table, self._hard_positive_table(hps)])
            table = table.sort_by([("frame", "ascending")])
        self._parquet.write_table(table)
        self._rows = []
        self._pending_rows = 0

    def _hard_positive_table(self, hps: list[HardPositive]) -> pa.Table:
        box = np.array([hp.box for hp in hps], np.float32)
        return pa.table(
            {
                "frame": [hp.t for hp in hps],
                "frame_number": [hp.t + 1 for hp in hps],
                "det": [-1] * len(hps),
                "x1": box[:, 0],
                "y1": box[:, 1],
                "x2": box[:, 2],
                "y2": box[:, 3],
                "score": pa.nulls(len(hps), pa.float32()),
                "candidate": [False] * len(hps),
                "verdict": ["hard_positive"] * len(hps),
                "reason": [
                    f"missed for {hp.gap} frame(s) between t{hp.a - hp.t:+d} and t{hp.b - hp.t:+d}"
                    for hp in hps
                ],
                "before": [""] * len(hps),
                "after": [""] * len(hps),
                "gap": [hp.gap for hp in hps],
                "support_before": [hp.support_before for hp in hps],
                "support_after": [hp.support_after for hp in hps],
                "similarity": [hp.similarity for hp in hps],
                "size_ratio": pa.nulls(len(hps), pa.float32()),
            },
            schema=self._schema,
        )

    def _finish_pictures(self) -> None:
        try:
            while self._pictures:
                self._pictures.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Finish every file; the summary JSON is written last. Returns the summary."""
        try:
            self._finish_pictures()
            self._flush()
            self._parquet.close()
            self._txt.close()
            os.replace(self._tmp_verdicts, self.paths["verdicts"])
            os.replace(self._tmp_txt, self.paths["result_txt"])
            full = {**summary, **self.counts, "params": self.params}
            full["outputs"] = {k: str(v) for k, v in self.paths.items()}
            atomic_write_text(self.paths["summary"], json.dumps(full, indent=2) + "\n")
        except BaseException:  # a failure or an interruption half way: no outputs at all
            self.abort()
            raise
        self._unlock()
        return full

    def abort(self) -> None:
        """Close files after a failure (or an interruption): the video's partial files and
        the pictures written so far are removed, so it has complete outputs or none."""
        with contextlib.suppress(Exception):  # the first error is the one being reported
            self._finish_pictures()
        with contextlib.suppress(Exception):
            self._parquet.close()
        try:
            self._txt.close()
            self._remove_all()
        finally:
            self._unlock()

    def _remove_all(self) -> None:
        """Delete the partial files and every output of this video."""
        lock = getattr(self, "_write_lock", None) or threading.Lock()
        with lock:
            self._aborted = True
            discard_outputs(self.out_dir, self.stem)
