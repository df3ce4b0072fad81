"""Synthetic benchmark videos: textured objects moving over a textured background, detections
that follow them (with jitter and drop-outs) plus isolated false boxes (flickers)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from flickermine.io import save_detections
from flickermine.structures import VideoDetections

DATA = Path(__file__).parent / "_data"


def texture(rng: np.random.Generator, h: int, w: int, blur: float) -> np.ndarray:
    """A smooth random colour texture ``(h, w, 3)`` uint8."""
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), blur)


@contextlib.contextmanager
def h264_writer(
    path: Path, width: int, height: int, crf: int
) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield a function that appends BGR frames to an H.264 video at ``path`` (25 fps)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}

        def write(img: np.ndarray) -> None:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)

        yield write
        for packet in stream.encode():
            out.mux(packet)


def make_video(
    n_frames: int, width: int = 768, height: int = 576, objects: int = 6, seed: int = 0
) -> tuple[Path, Path]:
    """Write (once, cached) a video and its detections; returns their paths."""
    DATA.mkdir(exist_ok=True)
    stem = f"synth_{n_frames}_{width}x{height}_{objects}_{seed}"
    video, dets_path = DATA / f"{stem}.mp4", DATA / f"{stem}.parquet"
    if video.exists() and dets_path.exists():
        return video, dets_path
    rng = np.random.default_rng(seed)
    bg = texture(rng, height, width, 4)
    size = np.stack([rng.integers(50, 90, objects), rng.integers(90, 160, objects)], 1)
    pos = np.stack(
        [rng.uniform(60, width - 160, objects), rng.uniform(60, height - 220, objects)], 1
    )
    vel = rng.uniform(-3, 3, (objects, 2))
    patches = [texture(rng, int(s[1]), int(s[0]), 2) for s in size]
    rows: list[tuple[int, float, float, float, float, float]] = []
    tmp = video.with_suffix(".tmp.mp4")
    with h264_writer(tmp, width, height, crf=23) as write:
        for t in range(n_frames):
            img = bg.copy()
            for i in range(objects):
                x, y = pos[i]
                w, h = size[i]
                if not (x >= 0 and x + w <= width and y >= 0 and y + h <= height):
                    vel[i] *= -1
                    pos[i] = np.clip(pos[i], 0, [width - w, height - h])
                    x, y = pos[i]
                xi, yi = int(x), int(y)
                img[yi : yi + h, xi : xi + w] = patches[i]
                if rng.random() > 0.03:  # the detector misses 3 % of the time
                    j = rng.normal(0, 2, 4)
                    rows.append((t, xi + j[0], yi + j[1], xi + w + j[2], yi + h + j[3],
                                 float(rng.uniform(0.82, 0.97))))  # fmt: skip
                pos[i] += vel[i]
            if rng.random() < 0.05:  # a flicker on plain background
                fw, fh = rng.integers(50, 90), rng.integers(60, 140)
                fx, fy = rng.uniform(60, width - 60 - fw), rng.uniform(60, height - 60 - fh)
                rows.append((t, fx, fy, fx + fw, fy + fh, float(rng.uniform(0.8, 0.95))))
            write(img)
    arr = np.array(rows, np.float64)
    dets = VideoDetections.from_rows(
        frame=arr[:, 0].astype(int), xyxy=arr[:, 1:5], score=arr[:, 5], num_frames=n_frames,
        meta={"video": str(video), "width": width, "height": height},
    )  # fmt: skip
    save_detections(dets, dets_path)
    tmp.rename(video)
    return video, dets_path
