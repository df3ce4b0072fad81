"""Choosing mining parameters on annotated footage (``flickermine audit --sweep``).

The miner is run over a grid of its main parameters on the videos of a mining output (their
video and detection files are recorded in its summaries), each setting scored against ground
truth as :mod:`flickermine.audit` does, without writing pictures. The result is the
precision–yield frontier of hard negatives and of hard positives, and the setting that mines the
most hard negatives at a chosen precision, written as a YAML file that ``mine --config`` reads.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flickermine._system import pyplot
from flickermine.audit import (
    MATCH_IOU,
    AuditCounts,
    AuditError,
    GroundTruth,
    read_ground_truth,
    score_frame_rows,
)
from flickermine.io import load_detections
from flickermine.mine.flicker import iter_flickers
from flickermine.mine.outputs import mined_outputs
from flickermine.mine.params import HardPositiveParams, MinerParams
from flickermine.video import VideoReader

#: The grid searched by default: each parameter's values (the rest stay at the base preset's).
DEFAULT_GRID: dict[str, list[Any]] = {
    "score_threshold": [0.5, 0.6, 0.7, 0.8],
    "support_score": [None, 0.3],
    "size_outlier": [0.0, 3.0, 4.0, 6.0],
    "window": [3, 5],
}


def grid_settings(grid: dict[str, list[Any]], base: MinerParams) -> list[MinerParams]:
    """Every combination of ``grid`` over ``base`` (combinations that are invalid, such as a
    support score above the score threshold, are left out)."""
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[n] for n in names)):
        changes = dict(zip(names, values, strict=True))
        if changes.get("support_score") is not None and changes["support_score"] > changes.get(
            "score_threshold", base.score_threshold
        ):
            continue
        out.append(MinerParams(**{**base.to_dict(), **changes}))
    return out


def _score_video(
    video: Path,
    detections: Any,
    truth: GroundTruth,
    params: MinerParams,
    hard_positives: HardPositiveParams | None,
    iou: float,
) -> AuditCounts:
    reader = VideoReader(video)
    counts = AuditCounts()
    for fv in iter_flickers(reader, detections, params, reader.width, reader.height,
                            hard_positives=hard_positives, threads=0):  # fmt: skip
        hp = np.array([h.box for h in fv.hard_positives], np.float64).reshape(-1, 4)
        xyxy = np.concatenate([fv.xyxy.astype(np.float64), hp])
        verdict = np.array(
            [("hard_negative" if v else "pseudo_positive") for v in fv.hard_negative]
            + ["hard_positive"] * len(hp),
            dtype=object,
        )
        gt, counted = truth.frame(fv.index)
        score_frame_rows(counts, xyxy, verdict, np.full(len(verdict), "", object), gt,
                         counted, iou)  # fmt: skip
        counts.frames += 1
    return counts


def sweep(
    mined: str | os.PathLike[str],
    gt: str | os.PathLike[str] | dict[str, str | os.PathLike[str]],
    settings: list[MinerParams],
    *,
    hard_positives: HardPositiveParams | None = None,
    iou: float = MATCH_IOU,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Mine the videos of ``mined`` with every setting and score each against ``gt``.

    Returns:
        One row per setting: its parameters (``params``) and the total figures.

    Raises:
        AuditError: a video or detection file recorded in a summary that no longer exists.
    """
    videos = []
    for verdicts, summary in mined_outputs(mined):
        stem = verdicts.name.removesuffix(".verdicts.parquet")
        video, det_path = Path(str(summary.get("video", ""))), Path(str(summary.get("detections")))
        for path, what in ((video, "video"), (det_path, "detection file")):
            if not path.is_file():
                raise AuditError(f"{verdicts.parent / stem}.json: its {what} {path} is missing")
        source = gt[stem] if isinstance(gt, dict) else gt
        videos.append((video, load_detections(det_path), read_ground_truth(source, str(video))))
    rows = []
    for params in settings:
        total = AuditCounts()
        for video, dets, truth in videos:
            total.add(_score_video(video, dets, truth, params, hard_positives, iou))
        rows.append({"params": params.to_dict(), **total.to_dict()})
        if progress is not None:
            progress(1)
    return rows


def frontier(rows: list[dict[str, Any]], count: str, precision: str) -> list[dict[str, Any]]:
    """The rows no other row beats on both ``count`` and ``precision`` (sorted by count)."""
    usable = [r for r in rows if r[precision] is not None and r[count]]
    best: list[dict[str, Any]] = []
    for r in sorted(usable, key=lambda r: (-r[count], -r[precision])):
        if not best or r[precision] > best[-1][precision]:
            best.append(r)
    return sorted(best, key=lambda r: r[count])


def best_setting(
    rows: list[dict[str, Any]], min_precision: float, min_hp_precision: float | None = None
) -> dict[str, Any] | None:
    """The row flagging the most hard negatives at ``min_precision`` or better (and, when
    given, hard positives at ``min_hp_precision`` or better); ``None`` if none does."""
    ok = [
        r for r in rows
        if r["hard_negative_precision"] is not None
        and r["hard_negative_precision"] >= min_precision
        and (
            min_hp_precision is None
            or (r["hard_positive_precision"] or 0.0) >= min_hp_precision
        )
    ]  # fmt: skip
    return max(ok, key=lambda r: (r["hard_negatives"], r["hard_negative_precision"]), default=None)


def plot_frontier(rows: list[dict[str, Any]], png: Path) -> bool:
    """Precision against yield for hard negatives and hard positives, every setting a dot and
    the frontier a line; False (nothing written) without matplotlib."""
    plt = pyplot("frontier plot")
    if plt is None:
        return False
    from flickermine._atomic import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (count, prec, title) in zip(axes, (
        ("hard_negatives", "hard_negative_precision", "hard negatives"),
        ("hard_positives", "hard_positive_precision", "hard positives"),
    ), strict=True):  # fmt: skip
        pts = [(r[count], r[prec]) for r in rows if r[prec] is not None]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=12, alpha=0.5)
        line = frontier(rows, count, prec)
        if line:
            ax.plot([r[count] for r in line], [r[prec] for r in line], "r-o", ms=4)
        ax.set_xlabel(f"{title} mined")
        ax.set_ylabel("precision against ground truth")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


def params_yaml(params: dict[str, Any], note: str) -> str:
    """A ``mine --config`` file for ``params``."""
    import yaml

    return f"# {note}\n" + yaml.safe_dump({"miner": params}, sort_keys=False)
