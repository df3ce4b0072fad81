"""Benchmark of ``flickermine dataset merge``.

Builds (once, cached in ``_data/``) a synthetic COCO file the size of COCO train2017 — 118,287
images, 860,001 annotations with polygon segmentations — and a mining output holding 5,000 mined
frames (real JPEG files, native verdict table), then prints the time of a full merge (load,
check, add, check, copy the frames, atomic write) as a ratio of a plain ``json`` load + dump of
the same file. Target: <= 2.

Usage: ``python benchmarks/bench_dataset.py [--frames 5000]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine.dataset import merge_files

DATA = Path(__file__).parent / "_data"


def make_coco(path: Path, images: int = 118_287, annotations: int = 860_001) -> None:
    rng = np.random.default_rng(0)
    imgs = [{"license": int(rng.integers(1, 8)), "file_name": f"{i:012d}.jpg",
             "coco_url": f"http://images.cocodataset.org/train2017/{i:012d}.jpg",
             "height": 480, "width": 640, "date_captured": "2013-11-14 16:28:13",
             "flickr_url": f"http://farm4.staticflickr.com/{i}.jpg", "id": i}
            for i in range(1, images + 1)]  # fmt: skip
    xy = rng.uniform(0, 400, (annotations, 2)).round(2)
    wh = rng.uniform(2, 200, (annotations, 2)).round(2)
    image_ids = rng.integers(1, images + 1, annotations)
    cats = rng.integers(1, 81, annotations)
    anns = []
    for k in range(annotations):
        x, y = xy[k]
        w, h = wh[k]
        poly = [x, y, x + w, y, x + w, y + h, x, y + h, x + w / 2, y + h / 2]
        anns.append({"segmentation": [[round(float(v), 2) for v in poly]],
                     "area": round(float(w * h), 4), "iscrowd": 0, "image_id": int(image_ids[k]),
                     "bbox": [float(x), float(y), float(w), float(h)],
                     "category_id": int(cats[k]), "id": k + 1})  # fmt: skip
    coco = {
        "info": {"description": "synthetic COCO train2017-sized"},
        "licenses": [{"id": i, "name": f"L{i}"} for i in range(1, 9)],
        "images": imgs,
        "annotations": anns,
        "categories": [{"supercategory": "s", "id": c, "name": f"c{c}"} for c in range(1, 81)],
    }
    path.write_bytes(orjson.dumps(coco))  # fmt: skip


def make_mined(out: Path, frames: int) -> None:
    """A mining output folder (as ``flickermine mine`` writes it) with ``frames`` mined frames."""
    stem = "bench"
    fdir = out / "frames" / stem
    fdir.mkdir(parents=True)
    _, buf = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))
    for t in range(frames):
        (fdir / f"frame{t + 1}.jpg").write_bytes(buf.tobytes())
    rows = {"frame": [], "det": [], "x1": [], "y1": [], "x2": [], "y2": [], "score": [],
            "verdict": []}  # fmt: skip
    for t in range(frames):
        for j, verdict in enumerate(("pseudo_positive", "pseudo_positive", "hard_negative")):
            x = 20.0 + 60 * j
            for key, value in (("frame", t), ("det", j), ("x1", x), ("y1", 30.0),
                               ("x2", x + 40), ("y2", 110.0), ("score", 0.9),
                               ("verdict", verdict)):  # fmt: skip
                rows[key].append(value)
    pq.write_table(pa.table(rows), out / f"{stem}.verdicts.parquet")
    summary = {"video": "/videos/bench.mp4", "width": 320, "height": 240, "params": {"window": 5}}
    (out / f"{stem}.json").write_text(json.dumps(summary))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=5000)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    coco_path = DATA / "coco_train2017_synthetic.json"
    if not coco_path.exists():
        print("generating the synthetic COCO file (once) ...", flush=True)
        make_coco(coco_path)
    tmp = Path(tempfile.mkdtemp(prefix="bench_dataset_"))
    try:
        mined = tmp / "mined"
        make_mined(mined, args.frames)
        size = coco_path.stat().st_size / 2**20
        start = time.perf_counter()
        with coco_path.open() as fh:
            data = json.load(fh)
        with (tmp / "plain.json").open("w") as fh:
            json.dump(data, fh)
        plain = time.perf_counter() - start
        del data
        start = time.perf_counter()
        report, _ = merge_files(coco_path, [mined], tmp / "images", 18, tmp / "merged.json")
        merge = time.perf_counter() - start
        print(f"COCO file: {size:.0f} MiB; merged {report.images_added} frames, "
              f"{report.annotations_added} annotations")  # fmt: skip
        print(f"plain json load + dump {plain:7.2f} s")
        print(f"flickermine merge      {merge:7.2f} s")
        print(f"merge / plain          {merge / plain:7.2f}   (target <= 2)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
