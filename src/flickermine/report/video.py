"""The review video: a whole mined video with every detection drawn in its verdict's colour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from flickermine._atomic import atomic_path
from flickermine.errors import ReportError
from flickermine.report.draw import (
    HARD_NEGATIVE_BGR,
    HARD_POSITIVE_BGR,
    PSEUDO_POSITIVE_BGR,
    draw_boxes,
)
from flickermine.report.html import Video, _rows
from flickermine.video import VideoReader

_COLOURS = {"hard_negative": HARD_NEGATIVE_BGR, "pseudo_positive": PSEUDO_POSITIVE_BGR,
            "hard_positive": HARD_POSITIVE_BGR}  # fmt: skip
#: Detections the miner did not judge (below the threshold, or near the video's ends).
OTHER_BGR = (160, 160, 160)
_LEGEND = (("hard negative", HARD_NEGATIVE_BGR), ("pseudo-positive", PSEUDO_POSITIVE_BGR),
           ("missed (hard positive)", HARD_POSITIVE_BGR), ("not judged", OTHER_BGR))  # fmt: skip


def _legend(image: np.ndarray) -> np.ndarray:
    scale = max(0.4, image.shape[0] / 1000)
    y = int(22 * scale / 0.5)
    for text, colour in _LEGEND:
        cv2.rectangle(
            image, (8, y - int(12 * scale / 0.5)), (8 + int(14 * scale / 0.5), y), colour, -1
        )
        cv2.putText(image, text, (14 + int(14 * scale / 0.5), y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 2, cv2.LINE_AA)  # fmt: skip
        cv2.putText(image, text, (14 + int(14 * scale / 0.5), y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    colour, 1, cv2.LINE_AA)  # fmt: skip
        y += int(20 * scale / 0.5)
    return image


def _judged(video: Video) -> dict[int, list[dict[str, Any]]]:
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for r in _rows(video):
        by_frame.setdefault(int(r["frame"]), []).append(r)
    return by_frame


def write_review_video(video: Video, out: Path) -> Path:
    """``out`` (an MP4): every frame of the mined video, in one forward pass, with the verdicts
    drawn (and the detections the miner did not judge, grey) and a legend.

    Raises:
        ReportError: the video recorded in the summary is missing.
    """
    path = Path(str(video.summary.get("video", "")))
    if not path.is_file():
        raise ReportError(f"{video.folder / video.stem}.json: its video {path} is missing")
    reader = VideoReader(path)
    judged = _judged(video)
    others = _other_detections(video)
    with atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream: Any = container.add_stream("libx264", rate=round(reader.fps) or 25)
        stream.width, stream.height = reader.width // 2 * 2, reader.height // 2 * 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in reader.frames():
            rows = judged.get(frame.index, [])
            boxes = [[r["x1"], r["y1"], r["x2"], r["y2"]] for r in rows]
            colours = [_COLOURS[r["verdict"]] for r in rows]
            labels = ["missed" if r["score"] is None else f"{r['score']:.2f}" for r in rows]
            for box in others.get(frame.index, []):
                if not any(np.allclose(box, b, atol=0.5) for b in boxes):
                    boxes.append(list(box))
                    colours.append(OTHER_BGR)
                    labels.append("")
            picture = draw_boxes(frame.bgr, np.array(boxes, float).reshape(-1, 4), colours, labels)
            picture = _legend(picture)[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def _other_detections(video: Video) -> dict[int, list[np.ndarray]]:
    """Every detection of the detection file (when it can still be read), by frame."""
    from flickermine.errors import FlickermineError
    from flickermine.io import load_detections

    source = Path(str(video.summary.get("detections", "")))
    if not source.is_file():
        return {}
    try:
        dets = load_detections(source)
    except FlickermineError:
        return {}
    return {t: list(dets.xyxy[dets.frame_slice(t)]) for t in range(dets.num_frames)
            if dets.frame_offsets[t + 1] > dets.frame_offsets[t]}  # fmt: skip
