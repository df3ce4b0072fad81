"""Training and evaluation speed.

For the default model (Faster R-CNN ResNet-50 FPN v2) and the MobileNetV3-Large FPN variant,
at the default scale (600 px short side, 1000 max), from untrained weights (speed does not
depend on them): iterations/s of ``train`` (batch 2) on synthetic 640x480 images and images/s of
evaluation (model inference over a COCO file plus COCO AP).

Usage: ``python benchmarks/bench_train.py [--iterations 3] [--device cpu]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from flickermine.evaluate import coco_metrics, predict_coco
from flickermine.train import TrainConfig, train

MODELS = ("fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from factories import make_shapes_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    ann = make_shapes_dataset(tmp, n_images=max(args.images, 4), size=480)
    # 480x480 images scale to 600x600 at the default scale.
    gt = json.loads(ann.read_text())
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, scale 600/1000")
    for name in MODELS:
        cfg = TrainConfig(train=str(ann), images=str(tmp / "images"), out=str(tmp / name),
                          category="disc", model=name, weights=None, iterations=args.iterations + 1,
                          batch_size=2, checkpoint_every=10_000, device=args.device)  # fmt: skip
        times: list[float] = []
        last = [time.perf_counter()]

        def tick(_it: int, _losses: dict[str, float], times=times, last=last) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        train(cfg, progress=tick)
        its = len(times[1:]) / sum(times[1:])  # the first iteration warms up
        start = time.perf_counter()
        preds = predict_coco(tmp / name / "final.pt", gt, tmp / "images", 5, device=args.device)
        coco_metrics(gt, preds, "disc")
        ips = len(gt["images"]) / (time.perf_counter() - start)
        print(f"{name:<36} train {its:6.3f} it/s (batch 2)   evaluate {ips:6.2f} images/s")


if __name__ == "__main__":
    main()
