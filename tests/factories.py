"""Synthetic videos and detections for tests: real files, decoded by the real decoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from flickermine.structures import VideoDetections


def texture(seed: int, height: int, width: int, blur: float = 2.0) -> np.ndarray:
    """A smooth random colour texture ``(H, W, 3)`` uint8 (distinctive for template matching)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), blur)


@dataclass
class Sprite:
    """A textured rectangle drawn at ``positions[t] = (x, y)`` (top-left) in frame ``t``."""

    patch: np.ndarray
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)

    def box(self, t: int) -> tuple[float, float, float, float]:
        x, y = self.positions[t]
        h, w = self.patch.shape[:2]
        return (float(x), float(y), float(x + w), float(y + h))


def render_frames(
    n_frames: int,
    width: int = 320,
    height: int = 240,
    sprites: Sequence[Sprite] = (),
    *,
    background_seed: int = 0,
    cut_at: int | None = None,
) -> list[np.ndarray]:
    """Frames of a static textured background with sprites; after ``cut_at`` the background
    (a scene cut) changes."""
    bg = texture(background_seed, height, width, blur=3)
    bg2 = texture(background_seed + 1000, height, width, blur=3)
    frames = []
    for t in range(n_frames):
        img = (bg2 if cut_at is not None and t >= cut_at else bg).copy()
        for s in sprites:
            if t in s.positions:
                x, y = s.positions[t]
                h, w = s.patch.shape[:2]
                x0, y0 = max(x, 0), max(y, 0)
                x1, y1 = min(x + w, width), min(y + h, height)
                if x1 > x0 and y1 > y0:
                    img[y0:y1, x0:x1] = s.patch[y0 - y : y1 - y, x0 - x : x1 - x]
        frames.append(img)
    return frames


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    fps: int = 25,
    *,
    bframes: int = 0,
    keyint: int = 250,
    open_gop: bool = False,
    pyramid: str = "normal",
    rotation: int = 0,
) -> Path:
    """Encode BGR frames with libx264 (near-lossless) into ``path`` (mp4/mkv/avi by suffix);
    ``bframes`` B-frames between references (as most real videos have; the first of each
    pyramid is a reference, the others are not), a keyframe at least every ``keyint`` frames
    (exactly, with ``open_gop``: B-frames may then refer across keyframes); ``pyramid`` is
    x264's ``b-pyramid`` (``none``: no B-frame is a reference). ``rotation`` (degrees
    clockwise, a multiple of 90): the frames are stored turned the other way, with a display
    rotation that turns them back, as phones record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [np.ascontiguousarray(np.rot90(f, rotation // 90)) for f in frames]
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if rotation:
            stream.set_display_rotation(-rotation)
        params = f"keyint={keyint}"
        if bframes:
            params += f":bframes={bframes}:b-adapt=0:b-pyramid={pyramid}"
        if open_gop:
            params += f":open-gop=1:min-keyint={keyint}:scenecut=0"
        options = {"crf": "4", "preset": "ultrafast", "x264-params": params}
        stream.options = options
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def joined_sizes_video(folder: Path) -> Path:
    """``joined.ts``: ten 96x64 frames then ten 64x48 ones, two MPEG-TS recordings joined byte
    by byte (they play as one video; decoding it fails at frame 11)."""

    def segment(path: Path, width: int, height: int, seed: int) -> bytes:
        with av.open(str(path), "w", format="mpegts") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for t in range(10):
                img = texture(seed + t, height, width)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return path.read_bytes()

    joined = folder / "joined.ts"
    joined.write_bytes(segment(folder / "a.ts", 96, 64, 0) + segment(folder / "b.ts", 64, 48, 9))
    return joined


def detections(
    rows: Sequence[tuple[int, float, float, float, float, float]], num_frames: int
) -> VideoDetections:
    """Detections from ``(frame, x1, y1, x2, y2, score)`` rows."""
    arr = np.asarray(rows, np.float64).reshape(-1, 6)
    return VideoDetections.from_rows(
        frame=arr[:, 0].astype(int), xyxy=arr[:, 1:5], score=arr[:, 5], num_frames=num_frames
    )


def sprite_rows(
    sprite: Sprite, frames: Sequence[int], score: float = 0.9
) -> list[tuple[int, float, float, float, float, float]]:
    """Detection rows that follow ``sprite`` exactly in ``frames``."""
    return [(t, *sprite.box(t), score) for t in frames]


def make_coco(n_images: int = 6, seed: int = 0) -> dict:
    """A COCO file shaped like the real one: info, licenses, unknown keys, polygons, crowd
    boxes, ids neither contiguous nor sorted."""
    rng = np.random.default_rng(seed)
    cats = [
        {"supercategory": "animal", "id": 18, "name": "dog"},
        {"supercategory": "vehicle", "id": 7, "name": "train"},
        {"supercategory": "person", "id": 1, "name": "person"},
    ]
    images, anns = [], []
    ann_id = 900
    for k in range(n_images):
        iid = 1000 - 37 * k
        images.append({"license": 3, "file_name": f"{iid:012d}.jpg", "coco_url": "http://x/y",
                       "height": 480, "width": 640, "date_captured": "2013-11-14 16:28:13",
                       "flickr_url": "http://z", "id": iid})  # fmt: skip
        for _ in range(int(rng.integers(0, 4))):
            x, y = (float(v) for v in rng.uniform(0, 400, 2).round(2))
            w, h = (float(v) for v in rng.uniform(5, 200, 2).round(2))
            anns.append({"segmentation": [[x, y, x + w, y, x + w, y + h]], "area": w * h / 2,
                         "iscrowd": int(rng.random() < 0.1), "image_id": iid,
                         "bbox": [x, y, w, h], "category_id": int(rng.choice([18, 7, 1])),
                         "id": ann_id, "custom": {"note": "kept"}})  # fmt: skip
            ann_id -= 7
    return {"info": {"description": "test", "year": 2017}, "licenses": [{"id": 3, "name": "L"}],
            "images": images, "annotations": anns, "categories": cats,
            "extra_top_level": [1, 2, 3]}  # fmt: skip


def make_shapes_dataset(root: Path, n_images: int = 40, seed: int = 0, size: int = 128) -> Path:
    """A tiny COCO dataset: discs (category 5, "disc") and look-alike squares of the same
    colours (category 9, "square") on noisy backgrounds; every fifth image holds no object.
    Returns the annotation file (images in ``root / "images"``)."""
    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n_images):
        img = (rng.normal(100, 20, (size, size, 3))).clip(0, 255).astype(np.uint8)
        iid = 10 + i
        if i % 5:
            for _ in range(int(rng.integers(1, 4))):
                r = int(rng.integers(9, 20))
                cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
                color = tuple(int(c) for c in rng.integers(150, 256, 3))
                if rng.random() < 0.6:
                    cv2.circle(img, (cx, cy), r, color, -1)
                    cat = 5
                else:
                    cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
                    cat = 9
                anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat,
                             "bbox": [cx - r, cy - r, 2 * r + 1, 2 * r + 1],
                             "area": float((2 * r + 1) ** 2), "iscrowd": 0})  # fmt: skip
        name = f"img{iid:04d}.png"
        cv2.imwrite(str(img_dir / name), img)
        images.append({"id": iid, "file_name": name, "width": size, "height": size})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 5, "name": "disc"}, {"id": 9, "name": "square"}]}  # fmt: skip
    path = root / "train.json"
    import json

    path.write_text(json.dumps(coco))
    return path
