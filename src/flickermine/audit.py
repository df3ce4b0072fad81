"""Scoring what the miner found against ground truth (``flickermine audit``).

A user with a few annotated clips measures here how far to trust what the miner gives on the
rest. For every mined video the verdict table (``S.verdicts.parquet``: every valid detection of
every examined frame, and every hard positive) is compared with the annotated boxes of the same
frames:

* a detection is a **false positive** of the detector when its IoU with every annotated box is
  below ``iou`` (0.5); one that overlaps only boxes marked "do not count" (MOTChallenge
  ``consider = 0``: mostly hidden people, people outside the area of interest) is *ignored*:
  neither right nor wrong;
* **hard-negative precision** is the share of hard negatives that are false positives, and
  **false positives flagged** the share of the detector's false positives that are hard
  negatives;
* **hard-positive precision** and **pseudo-positive precision** are the shares of those boxes
  that overlap an annotated box with IoU >= ``iou``;
* the **area ratio** is the median of detection area / annotated area over matched boxes
  (above 1: the detector's boxes are looser than the annotation).

Ground truth comes as MOTChallenge ``gt.txt`` (``frame,id,x,y,w,h,consider,...``, frames
1-based) or as COCO JSON whose ``images`` carry ``video`` and ``frame`` (1-based) fields, or
whose file names end in the frame number (``.../frame137.jpg``, 1-based) when the file holds
one video.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine.errors import AuditError, ConfigError
from flickermine.mine.outputs import mined_outputs
from flickermine.structures import iou_matrix

#: IoU at which a box counts as the annotated object.
MATCH_IOU = 0.5


@dataclass
class GroundTruth:
    """Annotated boxes of one video, by 0-based frame.

    Attributes:
        boxes: frame -> ``(K, 4)`` xyxy boxes.
        counted: frame -> ``(K,)`` bool; False for boxes whose miss is not counted.
        num_frames: one past the last annotated frame.
    """

    boxes: dict[int, npt.NDArray[np.float64]]
    counted: dict[int, npt.NDArray[np.bool_]]
    num_frames: int

    def frame(self, t: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The boxes of frame ``t`` and which of them count (empty where none)."""
        return self.boxes.get(t, np.zeros((0, 4))), self.counted.get(t, np.zeros(0, np.bool_))


def _group(rows: list[tuple[int, float, float, float, float, bool]]) -> GroundTruth:
    boxes: dict[int, list[list[float]]] = {}
    counted: dict[int, list[bool]] = {}
    for t, x, y, w, h, c in rows:
        boxes.setdefault(t, []).append([x, y, x + w, y + h])
        counted.setdefault(t, []).append(c)
    return GroundTruth(
        {t: np.asarray(b, np.float64) for t, b in boxes.items()},
        {t: np.asarray(c, np.bool_) for t, c in counted.items()},
        max(boxes, default=-1) + 1,
    )


def read_mot_gt(path: str | os.PathLike[str]) -> GroundTruth:
    """MOTChallenge ground truth: ``frame,id,x,y,w,h,consider[,...]`` per line, frames 1-based.

    Raises:
        AuditError: unreadable file or a malformed line (naming file and line).
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"{p}: cannot read the ground truth: {exc}") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [v.strip() for v in line.split(",")]
        try:
            if len(parts) < 6:
                raise ValueError("fewer than 6 fields")
            frame, x, y, w, h = int(parts[0]), *(float(v) for v in parts[2:6])
            consider = float(parts[6]) if len(parts) > 6 else 1.0
        except ValueError:
            raise AuditError(
                f"{p}:{number}: expected 'frame,id,x,y,w,h,consider,...' (frame an integer, "
                f"the box numbers), got {line[:80]!r}"
            ) from None
        if frame < 1 or not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
            raise AuditError(f"{p}:{number}: not a box of a frame >= 1: {line[:80]!r}")
        rows.append((frame - 1, x, y, w, h, consider != 0))
    return _group(rows)


_FRAME_IN_NAME = re.compile(r"(\d+)\.[A-Za-z]+$")


def read_coco_gt(path: str | os.PathLike[str], video: str) -> GroundTruth:
    """The boxes of ``video`` in a COCO file whose images carry ``video`` and ``frame``
    (1-based) fields, or, when no image names a video, whose file names end in the frame
    number. ``iscrowd`` boxes are matched but not counted.

    Raises:
        AuditError: not a COCO file, or images without a frame.
    """
    from flickermine.dataset.coco import CocoError, check_coco, load_coco

    p = Path(path)
    try:
        coco = load_coco(p)
        check_coco(coco, str(p))
    except CocoError as exc:
        raise AuditError(str(exc)) from None
    named = any("video" in img for img in coco["images"])
    stem = Path(video).stem
    frames: dict[Any, int] = {}
    for img in coco["images"]:
        if named and Path(str(img.get("video", ""))).stem != stem:
            continue
        if "frame" in img:
            n = img["frame"]
        else:
            m = _FRAME_IN_NAME.search(str(img.get("file_name", "")))
            n = int(m.group(1)) if m else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise AuditError(
                f"{p}: image {img.get('id')} has no frame number (a 'frame' field >= 1, or a "
                "file name ending in it)"
            )
        frames[img["id"]] = n - 1
    rows = [
        (frames[a["image_id"]], *(float(v) for v in a["bbox"]), not a.get("iscrowd", 0))
        for a in coco["annotations"]
        if a["image_id"] in frames
    ]
    return _group(rows)  # type: ignore[arg-type]


def read_ground_truth(path: str | os.PathLike[str], video: str) -> GroundTruth:
    """MOTChallenge text (``.txt``) or COCO JSON (``.json``) ground truth of ``video``."""
    p = Path(path)
    if not p.is_file():
        raise AuditError(f"{p}: ground-truth file not found")
    if p.suffix.lower() == ".json":
        return read_coco_gt(p, video)
    return read_mot_gt(p)


# ---------------------------------------------------------------------------- scoring
@dataclass
class AuditCounts:
    """The figures of one video (or of all, summed). Ratios are ``None`` where undefined."""

    frames: int = 0
    detections: int = 0
    false_positives: int = 0
    ignored: int = 0
    hard_negatives: int = 0
    hard_negatives_false_positive: int = 0
    hard_negatives_ignored: int = 0
    hard_positives: int = 0
    hard_positives_on_object: int = 0
    pseudo_positives: int = 0
    pseudo_positives_on_object: int = 0
    area_ratios: list[float] = field(default_factory=list, repr=False)
    hard_negative_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: AuditCounts) -> None:
        for name, value in vars(other).items():
            if isinstance(value, int):
                setattr(self, name, getattr(self, name) + value)
        self.area_ratios += other.area_ratios

    @staticmethod
    def _share(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    def to_dict(self) -> dict[str, Any]:
        """Counts and ratios, as written to ``audit.json``."""
        hn_scored = self.hard_negatives - self.hard_negatives_ignored
        return {
            "frames": self.frames,
            "detections": self.detections,
            "false_positives": self.false_positives,
            "ignored": self.ignored,
            "hard_negatives": self.hard_negatives,
            "hard_negative_precision": self._share(self.hard_negatives_false_positive, hn_scored),
            "false_positives_flagged": self._share(
                self.hard_negatives_false_positive, self.false_positives
            ),
            "hard_positives": self.hard_positives,
            "hard_positive_precision": self._share(
                self.hard_positives_on_object, self.hard_positives
            ),
            "pseudo_positives": self.pseudo_positives,
            "pseudo_positive_precision": self._share(
                self.pseudo_positives_on_object, self.pseudo_positives
            ),
            "median_area_ratio": (
                round(float(np.median(self.area_ratios)), 3) if self.area_ratios else None
            ),
        }


def _best_match(
    boxes: npt.NDArray[np.float64], gt: npt.NDArray[np.float64], counted: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per box: best IoU with a counted annotation, best IoU with any, index of the best."""
    if len(gt) == 0 or len(boxes) == 0:
        zeros = np.zeros(len(boxes))
        return zeros, zeros, np.full(len(boxes), -1, np.int64)
    iou = iou_matrix(boxes, gt)
    best_counted = np.where(counted[None, :], iou, 0.0).max(axis=1)
    return best_counted, iou.max(axis=1), iou.argmax(axis=1)


def score_frame_rows(
    counts: AuditCounts,
    xyxy: npt.NDArray[np.float64],
    verdict: npt.NDArray[np.object_],
    reason: npt.NDArray[np.object_],
    gt: npt.NDArray[np.float64],
    counted: npt.NDArray[np.bool_],
    iou: float = MATCH_IOU,
) -> None:
    """Add one frame's verdict rows to ``counts``."""
    best_counted, best_any, which = _best_match(xyxy, gt, counted)
    on_object = best_counted >= iou
    ignored = ~on_object & (best_any >= iou)
    false_positive = ~on_object & ~ignored
    detection = verdict != "hard_positive"
    hn = verdict == "hard_negative"
    hp = verdict == "hard_positive"
    pp = verdict == "pseudo_positive"
    counts.detections += int(detection.sum())
    counts.false_positives += int((false_positive & detection).sum())
    counts.ignored += int((ignored & detection).sum())
    counts.hard_negatives += int(hn.sum())
    counts.hard_negatives_false_positive += int((hn & false_positive).sum())
    counts.hard_negatives_ignored += int((hn & ignored).sum())
    counts.hard_positives += int(hp.sum())
    counts.hard_positives_on_object += int((hp & (best_any >= iou)).sum())
    counts.pseudo_positives += int(pp.sum())
    counts.pseudo_positives_on_object += int((pp & (best_any >= iou)).sum())
    for r in reason[hn]:
        counts.hard_negative_reasons[str(r)] = counts.hard_negative_reasons.get(str(r), 0) + 1
    matched = detection & (best_any >= iou)
    if matched.any():
        g = gt[which[matched]]
        d = xyxy[matched]
        det_area = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])
        gt_area = np.maximum((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]), 1e-9)
        counts.area_ratios += (det_area / gt_area).tolist()


def read_verdicts(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The columns of a verdict table the audit needs."""
    try:
        table = pq.read_table(path, columns=["frame", "x1", "y1", "x2", "y2", "verdict", "reason"])
    except (pa.ArrowException, OSError) as exc:
        raise AuditError(f"{path}: unreadable verdict table: {exc}") from None
    out = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    out["xyxy"] = np.stack([out.pop(c).astype(np.float64) for c in ("x1", "y1", "x2", "y2")], 1)
    out["verdict"] = np.asarray(out["verdict"], dtype=object)
    out["reason"] = np.asarray(out["reason"], dtype=object)
    return out


def audit_verdicts(
    columns: dict[str, npt.NDArray[Any]],
    truth: GroundTruth,
    video_frames: int | None = None,
    source: str = "ground truth",
    iou: float = MATCH_IOU,
) -> AuditCounts:
    """Score one video's verdict rows (see :func:`read_verdicts`) against ``truth``.

    Raises:
        AuditError: ground truth of frames beyond ``video_frames`` (another video's?).
    """
    if video_frames is not None and truth.num_frames > video_frames:
        raise AuditError(
            f"{source}: annotates frame {truth.num_frames} (1-based) but the video has "
            f"{video_frames} frames: is it the ground truth of another video?"
        )
    counts = AuditCounts()
    frame = columns["frame"].astype(np.int64)
    order = np.argsort(frame, kind="stable")
    frame = frame[order]
    bounds = np.flatnonzero(np.diff(frame)) + 1
    for rows in np.split(order, bounds) if len(order) else []:
        t = int(columns["frame"][rows[0]])
        gt, counted = truth.frame(t)
        score_frame_rows(
            counts, columns["xyxy"][rows], columns["verdict"][rows], columns["reason"][rows],
            gt, counted, iou,
        )  # fmt: skip
    counts.frames = len(np.unique(frame))
    return counts


def audit(
    mined: str | os.PathLike[str],
    gt: str | os.PathLike[str] | dict[str, str | os.PathLike[str]],
    *,
    iou: float = MATCH_IOU,
) -> dict[str, Any]:
    """Score a mining output against ground truth (see the module docstring).

    Args:
        mined: a mining output folder, or one video's summary ``S.json``.
        gt: a ground-truth file (``.txt`` MOTChallenge or ``.json`` COCO); with several
            videos, a COCO file naming them, or a dict from video stem to file.
        iou: IoU at which a box is the annotated object.

    Returns:
        ``{"videos": {stem: figures}, "total": figures, "iou": iou}``; figures as
        :meth:`AuditCounts.to_dict` plus the hard negatives' reasons.
    """
    if not 0.0 < iou <= 1.0:
        raise ConfigError(f"iou: expected a value in (0, 1], got {iou}")
    videos = mined_outputs(mined)
    if isinstance(gt, dict):
        missing = [s.stem.removesuffix(".verdicts") for s, _ in videos]
        missing = [m for m in missing if m not in gt]
        if missing:
            raise AuditError(f"no ground truth given for {', '.join(missing)}")
    elif len(videos) > 1 and Path(gt).suffix.lower() != ".json":
        raise AuditError(
            f"{gt}: one MOTChallenge file for {len(videos)} videos; give a COCO file naming "
            "the videos, or one file per video"
        )
    total = AuditCounts()
    per_video: dict[str, Any] = {}
    for verdicts, summary in videos:
        stem = verdicts.name.removesuffix(".verdicts.parquet")
        source = gt[stem] if isinstance(gt, dict) else gt
        truth = read_ground_truth(source, str(summary.get("video", stem)))
        frames = summary.get("frames")
        counts = audit_verdicts(
            read_verdicts(verdicts), truth, frames if isinstance(frames, int) else None,
            str(source), iou,
        )  # fmt: skip
        reasons = counts.hard_negative_reasons
        per_video[stem] = {**counts.to_dict(), "hard_negative_reasons": reasons}
        total.add(counts)
        for r, c in counts.hard_negative_reasons.items():
            total.hard_negative_reasons[r] = total.hard_negative_reasons.get(r, 0) + c
    return {
        "iou": iou,
        "videos": per_video,
        "total": {**total.to_dict(), "hard_negative_reasons": total.hard_negative_reasons},
    }


_ROWS = (
    ("frames", "frames examined"),
    ("detections", "detections (valid)"),
    ("false_positives", "detector false positives"),
    ("hard_negatives", "hard negatives"),
    ("hard_negative_precision", "  precision (are false positives)"),
    ("false_positives_flagged", "  false positives flagged"),
    ("hard_positives", "hard positives"),
    ("hard_positive_precision", "  precision (on an object)"),
    ("pseudo_positives", "pseudo-positives"),
    ("pseudo_positive_precision", "  precision (on an object)"),
    ("median_area_ratio", "median area detection/annotation"),
)


def format_audit(result: dict[str, Any]) -> str:
    """The audit as a text table: one column per video and the total."""
    columns = [*result["videos"].items()]
    if len(columns) > 1:
        columns.append(("total", result["total"]))
    names = [c[0][:14] for c in columns]
    lines = [f"{'IoU >= ' + str(result['iou']):<36}" + "".join(f"{n:>15}" for n in names)]
    for key, label in _ROWS:
        cells = []
        for _, figures in columns:
            v = figures[key]
            cells.append(f"{'-' if v is None else (f'{v:.3f}' if isinstance(v, float) else v):>15}")
        lines.append(f"{label:<36}" + "".join(cells))
    return "\n".join(lines)
