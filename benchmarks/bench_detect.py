"""Throughput of ``flickermine detect`` against a naive loop.

Same video (the bundled 768x576 clip, first ``--frames`` frames), same model (Faster R-CNN
MobileNetV3-Large 320 FPN, randomly initialised: speed does not depend on the weights):

* naive: decode one frame, infer it, repeat (batch 1, torch's default threads);
* flickermine: ``detect_to_file`` as the CLI runs it — decoding ahead in a thread, frames in
  batches, one inference thread per core with one torch thread each.

Prints frames/s of both and their ratio (target >= 1.5 on the CPU). ``--device cuda`` runs the
same comparison on a GPU.

Usage: ``python benchmarks/bench_detect.py [--frames 60] [--batch-size 1] [--rounds 3]
[--device cpu] [--half] [--model NAME]`` (``benchmarks/gpu_check.sh`` runs the GPU figures)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

from flickermine.cli.detect import default_workers
from flickermine.demo import sample_video
from flickermine.detect import detect_to_file
from flickermine.detect.torchvision_backend import TorchvisionDetector
from flickermine.models import build_model, save_checkpoint
from flickermine.video import VideoReader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    ap.add_argument("--half", action="store_true", help="float16 (CUDA only), for both runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_detect_"))
    # A clip of exactly --frames frames, so both runs see the same frames.
    from tests_helpers import first_frames

    clip = first_frames(sample_video(), tmp / "clip.mp4", args.frames)
    torch.manual_seed(0)
    ckpt = tmp / "model.pt"
    save_checkpoint(ckpt, build_model(args.model, 2), args.model, [{"id": 1, "name": "thing"}])
    det = TorchvisionDetector(
        weights=str(ckpt), score_threshold=0.5, device=args.device, half=args.half
    )
    det([next(iter(VideoReader(clip))).bgr])  # warm-up

    default_threads = torch.get_num_threads()
    workers = default_workers("torchvision", args.device)

    def naive() -> float:
        torch.set_num_threads(default_threads)
        start = time.perf_counter()
        for frame in islice(VideoReader(clip), args.frames):
            det([frame.bgr])
        return args.frames / (time.perf_counter() - start)

    def ours() -> float:
        if workers > 1:
            det.threads_per_worker = max(1, (os.cpu_count() or 1) // workers)
        (tmp / "out.parquet").unlink(missing_ok=True)  # a finished file would be kept (resume)
        start = time.perf_counter()
        detect_to_file(clip, det, tmp / "out.parquet", batch_size=args.batch_size, workers=workers)
        return args.frames / (time.perf_counter() - start)

    # Alternating rounds, medians: this kind of machine drifts in speed.
    rates: dict[str, list[float]] = {"naive": [], "ours": []}
    for _ in range(args.rounds):
        rates["naive"].append(naive())
        rates["ours"].append(ours())
    slow, fast = statistics.median(rates["naive"]), statistics.median(rates["ours"])
    precision = "float16" if args.half else "float32"
    print(f"{args.model} on {args.device} ({precision}), {args.frames} frames 768x576, "
          f"{os.cpu_count()} cores, medians of {args.rounds} alternating rounds")  # fmt: skip
    print(f"naive loop (batch 1, {default_threads} torch threads) {slow:7.2f} frames/s")
    print(f"flickermine detect (batch {args.batch_size}, {workers} workers)   {fast:7.2f} frames/s")
    print(f"ratio                                      {fast / slow:7.2f}x  (target >= 1.5)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    sys.exit(main())
