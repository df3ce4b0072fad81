"""Datasets from video frames: a COCO file of chosen frames (with annotations from ground truth
or pseudo-labels from a detection file), and clips of a frame range.

A labelled starting set, a held-out test set and an unlabelled part to mine can all be cut from
one annotated video: frames ``start:stop`` (0-based, ``stop`` excluded) every ``step``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import av
import numpy as np

from flickermine._atomic import atomic_path, atomic_write_bytes
from flickermine.dataset.coco import Coco
from flickermine.errors import ConfigError
from flickermine.mine.outputs import encode_jpeg
from flickermine.paths import safe_component
from flickermine.video import VideoReader


def parse_range(text: str | None, num_frames: int, what: str = "frames") -> range:
    """``"A:B"`` or ``"A:B:STEP"`` (0-based, B excluded, either side may be empty) as a range of
    frames inside the video.

    >>> parse_range("10:20:5", 100)
    range(10, 20, 5)
    >>> parse_range(None, 3)
    range(0, 3)
    """
    if not text:
        return range(num_frames)
    m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*(?::\s*(\d+)\s*)?", str(text))
    if not m:
        raise ConfigError(
            f"{what}: expected START:STOP[:STEP] (0-based, STOP excluded), got {text!r}"
        )
    start = int(m.group(1)) if m.group(1) else 0
    stop = min(int(m.group(2)) if m.group(2) else num_frames, num_frames)
    step = int(m.group(3)) if m.group(3) else 1
    if step < 1 or start >= stop:
        raise ConfigError(f"{what}: {text!r} selects no frame of the video's {num_frames}")
    return range(start, stop, step)


def frames_dataset(
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    frames: range | None = None,
    *,
    category: str = "person",
    gt: str | os.PathLike[str] | None = None,
    detections: str | os.PathLike[str] | None = None,
    score_threshold: float = 0.5,
) -> Coco:
    """Write the chosen frames of ``video`` to ``out_dir/images/`` and return their COCO file.

    Each image record carries ``video`` (the file name) and ``frame`` (1-based), so that
    ``flickermine audit`` and the time-split of ``dataset subset`` can find it again.

    Args:
        frames: 0-based frame indices (default: all).
        category: the one category of the file.
        gt: annotations: MOTChallenge ``gt.txt`` (boxes marked "do not count" become
            ``iscrowd`` regions, which evaluation ignores and training skips).
        detections: or pseudo-labels: a detection file's boxes at ``score_threshold`` or more.

    Raises:
        ConfigError: both ``gt`` and ``detections``, or a frame range outside the video.
    """
    if gt is not None and detections is not None:
        raise ConfigError("give ground truth or detections as labels, not both")
    reader = VideoReader(video)
    chosen = frames if frames is not None else range(reader.num_frames)
    if chosen.stop > reader.num_frames:
        raise ConfigError(f"{video}: frames up to {chosen.stop} asked, it has {reader.num_frames}")
    boxes = _labels(gt, detections, score_threshold, reader.num_frames)
    stem = safe_component(Path(video).stem, f"{video}: the video's name")
    images_dir = Path(out_dir) / "images"
    wanted = set(chosen)
    coco: Coco = {
        "info": {
            "description": f"frames {chosen.start}:{chosen.stop}:{chosen.step} of "
            f"{Path(video).name}"
        },
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": category, "supercategory": category}],
    }
    for frame in reader.frames(wanted=np.isin(np.arange(reader.num_frames), list(wanted))):
        t = frame.index
        if t >= chosen.stop:
            break
        if t not in wanted:
            continue
        name = f"{stem}_frame{t + 1:06d}.jpg"
        atomic_write_bytes(images_dir / name, encode_jpeg(frame.bgr))
        image_id = len(coco["images"]) + 1
        coco["images"].append({"id": image_id, "file_name": name, "width": reader.width,
                               "height": reader.height, "video": Path(video).name,
                               "frame": t + 1})  # fmt: skip
        for x, y, w, h, crowd in boxes.get(t, []):
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                "area": round(w * h, 2), "iscrowd": int(crowd),
            })  # fmt: skip
    if len(coco["images"]) != len(wanted):
        raise ConfigError(f"{video}: only {len(coco['images'])} of {len(wanted)} frames decoded")
    return coco


def _labels(
    gt: str | os.PathLike[str] | None,
    detections: str | os.PathLike[str] | None,
    score_threshold: float,
    num_frames: int,
) -> dict[int, list[tuple[float, float, float, float, bool]]]:
    """Boxes ``(x, y, w, h, crowd)`` by 0-based frame."""
    out: dict[int, list[tuple[float, float, float, float, bool]]] = {}
    if gt is not None:
        from flickermine.audit import AuditError, read_mot_gt

        truth = read_mot_gt(gt)
        if truth.num_frames > num_frames:
            raise AuditError(
                f"{gt}: annotates frame {truth.num_frames}, the video has {num_frames}"
            )
        for t, b in truth.boxes.items():
            for (x1, y1, x2, y2), counted in zip(b, truth.counted[t], strict=True):
                out.setdefault(t, []).append((x1, y1, x2 - x1, y2 - y1, not counted))
    elif detections is not None:
        from flickermine.io import load_detections

        dets = load_detections(detections)
        for t in range(min(dets.num_frames, num_frames)):
            sl = dets.frame_slice(t)
            for (x1, y1, x2, y2), s in zip(dets.xyxy[sl], dets.score[sl], strict=True):
                if s >= score_threshold:
                    out.setdefault(t, []).append(
                        (float(x1), float(y1), float(x2 - x1), float(y2 - y1), False)
                    )
    return out


def write_clip(
    video: str | os.PathLike[str], out: str | os.PathLike[str], frames: range, crf: int = 18
) -> Path:
    """Frames ``frames.start:frames.stop`` of ``video`` as an H.264 MP4 (same size and frame
    rate, written atomically; ``frames.step`` must be 1)."""
    if frames.step != 1:
        raise ConfigError("a clip takes consecutive frames (no step)")
    reader = VideoReader(video)
    target = Path(out)
    wanted = np.zeros(reader.num_frames, np.bool_)
    wanted[frames.start : frames.stop] = True
    with atomic_path(target) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream: Any = container.add_stream("libx264", rate=round(reader.fps) or 25)
        stream.width, stream.height, stream.pix_fmt = reader.width, reader.height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        written = 0
        for frame in reader.frames(wanted=wanted):
            if frame.index >= frames.stop:
                break
            if frame.index < frames.start:
                continue
            image = av.VideoFrame.from_ndarray(frame.bgr, format="bgr24")
            for packet in stream.encode(image):
                container.mux(packet)
            written += 1
        for packet in stream.encode():
            container.mux(packet)
    if written != len(frames):
        target.unlink(missing_ok=True)
        raise ConfigError(f"{video}: only {written} of the {len(frames)} frames could be decoded")
    return target
