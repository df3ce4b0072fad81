"""The offline demo: detect people with HOG on the bundled clip, then mine the flickers."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_write_text
from flickermine.detect import HogPeopleDetector, detect_video
from flickermine.errors import OutputExistsError
from flickermine.io import save_detections
from flickermine.mine import HardPositiveParams, MinerParams, mine_video
from flickermine.mine.params import DEFAULT_PRESET
from flickermine.video import VideoReader

logger = logging.getLogger(__name__)

#: The miner's default preset, as ``flickermine mine`` uses it.
DEMO_PARAMS = MinerParams.preset(DEFAULT_PRESET)


def sample_video() -> Path:
    """Path of the bundled clip (200 frames of OpenCV's ``vtest.avi``)."""
    return Path(str(resources.files("flickermine") / "data" / "vtest_clip.mp4"))


@dataclass
class DemoResult:
    """Where the demo wrote its results, and the mining summary."""

    out_dir: Path
    detections: Path
    summary: dict[str, Any]


def run_demo(
    out_dir: str | Path,
    *,
    video: str | Path | None = None,
    params: MinerParams = DEMO_PARAMS,
    overwrite: bool = False,
    progress: Any = None,
) -> DemoResult:
    """Detect (HOG, person) and mine the bundled clip (or ``video``) into ``out_dir``, hard
    negatives and hard positives.

    ``out_dir`` receives ``detections/<stem>.parquet``, the miner's outputs, the review report
    ``report/index.html`` and ``SUMMARY.md``.
    The detections are reused when they are already there.
    """
    out = Path(out_dir)
    src = Path(video) if video else sample_video()
    det_path = out / "detections" / f"{src.stem}.parquet"
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        what = "an earlier demo" if (out / "SUMMARY.md").exists() else "files"
        raise OutputExistsError(f"{out}: holds {what}; pass --overwrite to redo the demo there")
    if not det_path.exists():
        logger.info("detecting people in %s", src)
        dets = detect_video(src, HogPeopleDetector(score_threshold=0.5), progress=progress)
        save_detections(dets, det_path)
    summary = mine_video(
        src, det_path, out, params, overwrite=True, hard_positives=HardPositiveParams(),
        progress=progress,
    )  # fmt: skip
    from flickermine.report.html import write_report

    write_report([out], out / "report", pseudo_positives=True, overwrite=True)
    atomic_write_text(out / "SUMMARY.md", _summary_markdown(src, summary))
    return DemoResult(out, det_path, summary)


def _summary_markdown(video: Path, s: dict[str, Any]) -> str:
    stem = video.stem
    return f"""# flickermine demo

Video: `{video.name}` — {s["frames"]} frames, {s["width"]}×{s["height"]} at {s["fps"]:g} fps.
Detector: OpenCV HOG people detector (scores = logistic of the SVM margin).

| | |
|---|---|
| valid detections (score ≥ {s["params"]["score_threshold"]}) | {s["valid_detections"]} |
| candidates | {s["candidates"]} |
| hard negatives (flickers) | {s["hard_negatives"]} |
| hard positives (missed people) | {s["hard_positives"]} |
| frames written | {s["frames_written"]} |
| mining time | {s["seconds"]:.1f} s |

Open `report/index.html` in a browser to review every example (accept or reject, then export
the decisions for `flickermine dataset merge --decisions`). Or look at `visualizations/{stem}/`:
hard negatives are drawn **red**, pseudo-positives **green**,
with their scores, and people the detector missed between two detections **blue** (`missed`).
`frames/{stem}/` holds the same frames untouched, `{stem}.txt` the seed's result format,
`{stem}.verdicts.parquet` every verdict with its reason.

Parameters: `{json.dumps(s["params"])}`
"""


def frames_of(path: Path) -> int:
    """Frame count of a video (for progress bars)."""
    return VideoReader(path).num_frames
