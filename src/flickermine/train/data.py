"""Training data from a COCO file: one category, images without it kept as negatives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flickermine.dataset.coco import Coco, CocoError, check_coco, find_category, image_file


class CocoTrainSet:
    """Images and boxes of one category. Images without that category stay, with empty
    targets: they are the negatives (mined hard negatives among them).

    ``batch(iteration, ...)`` is a pure function of the iteration and the seed — the order of
    images and the flips — so a resumed run sees exactly the data an uninterrupted one would.
    """

    def __init__(self, coco: Coco, images_dir: str | Path, category: str | int | None, source: str):
        check_coco(coco, source)
        if category is None:
            if len(coco["categories"]) != 1:
                raise CocoError(f"{source}: several categories; choose one with --category")
            cat = dict(coco["categories"][0])
        else:
            cat = find_category(coco, category, source)
        boxes: dict[Any, list[list[float]]] = {img["id"]: [] for img in coco["images"]}
        for ann in coco["annotations"]:
            if ann["category_id"] != cat["id"] or ann.get("iscrowd", 0):
                continue
            x, y, w, h = ann["bbox"]
            if w >= 1 and h >= 1:
                boxes[ann["image_id"]].append([x, y, x + w, y + h])
        if not any(boxes.values()):
            raise CocoError(
                f"{source}: no annotation of category {cat.get('name')!r} ({cat['id']})"
            )
        self.category = cat
        self.images = [
            (
                image_file(images_dir, img, source),
                np.array(boxes[img["id"]], np.float32).reshape(-1, 4),
            )
            for img in coco["images"]
        ]
        missing = [str(p) for p, _ in self.images if not p.is_file()]
        if missing:
            raise CocoError(f"{source}: {len(missing)} image(s) missing on disk, e.g. {missing[0]}")

    def __len__(self) -> int:
        return len(self.images)

    def indices(self, iteration: int, batch_size: int, seed: int) -> list[int]:
        """Images of ``iteration``: consecutive slices of a per-epoch seeded permutation."""
        n = len(self.images)
        out = []
        for k in range(iteration * batch_size, (iteration + 1) * batch_size):
            epoch, pos = divmod(k, n)
            perm = np.random.default_rng([seed, epoch]).permutation(n)
            out.append(int(perm[pos]))
        return out

    def load(self, index: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
        """RGB float image ``(3, H, W)`` in [0, 1] and its boxes ``(K, 4)`` (flipped if asked)."""
        path, boxes = self.images[index]
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise CocoError(f"{path}: unreadable image")
        rgb = np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0
        boxes = boxes.copy()
        if flip:
            rgb = np.ascontiguousarray(rgb[:, :, ::-1])
            w = rgb.shape[2]
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        return rgb, boxes

    def batch(
        self,
        iteration: int,
        batch_size: int,
        seed: int,
        hflip: bool,
        part: tuple[int, int] = (0, 1),
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The samples of ``iteration`` (this process's share ``part = (rank, world)``)."""
        rank, world = part
        idx = self.indices(iteration, batch_size * world, seed)[rank::world]
        rng = np.random.default_rng([seed, iteration, 7])
        flips = rng.random(batch_size * world)[rank::world] < 0.5
        return [self.load(i, bool(f) and hflip) for i, f in zip(idx, flips, strict=True)]
