"""Quality of the hard-positive and hard-negative miners on synthetic videos with ground truth.

Each video has textured objects moving (and bouncing, so crossing each other) over a textured
background. A simulated detector follows every object with jittered boxes but misses it for
runs of 1..4 frames, and fires isolated false boxes on the background. With
the failure modes of real detectors (the default; ``--clean`` leaves them out) it also

* scores real objects anywhere from 0.55 to 0.97 (near-threshold scores), not 0.85 to 0.97;
* reports one object in about 8 % of frames with a loose box, 1.6 times its size in each
  direction around it (IoU about 0.4: a false positive as COCO counts it);
* fires a static false box on the background that blinks: present in about half the frames.

Ground truth:

* hard positives: every (object, frame) inside a miss run that has detections of that object
  just before and just after it; a found hard positive is correct when it overlaps the missed
  object's true box in that frame with IoU >= 0.5;
* hard negatives: every false box (isolated, loose or blinking) scoring at or above the
  preset's score threshold in a frame the miner examines; a flagged box is correct when it is
  one of them.

With ``--ground-plane`` the objects have one size (±8 %) that grows with their height in the
image, as people seen by a fixed camera do: the scenes on which the size rule can work.

Usage: ``python benchmarks/bench_hardpos.py [--videos 6] [--frames 200] [--seed 0] [--clean]
[--ground-plane] [--presets seed,recall]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml

from flickermine.mine import HardPositiveParams, MinerParams, iter_flickers
from flickermine.structures import VideoDetections, iou_matrix
from flickermine.video import VideoReader

sys.path.insert(0, str(Path(__file__).parent))
from _synth import h264_writer, texture

W, H = 384, 288
#: Longest run of frames a simulated detector misses an object for.
MISS_RUN = 4


def make_case(
    path: Path, n: int, rng: np.random.Generator, k: int, clean: bool = False,
    ground_plane: bool = False, pan: int = 0,
):  # fmt: skip
    """Write one video; return detections, true boxes (n, objects, 4), missed mask, false boxes
    (``(frame, x1, y1, x2, y2, score)``). With ``ground_plane``, objects have one size up to
    ±8 % that grows with their height in the image, as people seen by a fixed camera do."""
    objects = int(rng.integers(2, 5)) + (3 if ground_plane else 0)
    bg = texture(rng, H, W + pan * n, 4)  # the camera pans ``pan`` px a frame across it
    size = np.stack([rng.integers(40, 70, objects), rng.integers(60, 110, objects)], 1)
    if ground_plane:
        size = np.stack([np.full(objects, 40), np.round(80 * rng.uniform(0.92, 1.08, objects))], 1)
    pos = np.stack([rng.uniform(0, W - 70, objects), rng.uniform(0, H - 110, objects)], 1)
    vel = rng.uniform(-4, 4, (objects, 2))
    patches = [texture(rng, int(s[1]), int(s[0]), 2) for s in size]
    truth = np.zeros((n, objects, 4))
    missed = np.zeros((n, objects), bool)
    for i in range(objects):  # miss runs of 1..k frames, at least 3 detected frames apart
        t = int(rng.integers(3, 12))
        while t < n:
            run = int(rng.integers(1, k + 1))
            missed[t : t + run, i] = True
            t += run + int(rng.integers(3, 25))
    rows, false_boxes = [], []
    blinker = None
    if not clean:  # a static false box on the background, present in about half the frames
        bw, bh = int(rng.integers(40, 60)), int(rng.integers(70, 100))
        bx, by = rng.uniform(60, W - 60 - bw), rng.uniform(60, H - 60 - bh)
        blinker = (bx, by, bx + bw, by + bh)
    with h264_writer(path, W, H, crf=20) as write:
        for t in range(n):
            img = bg[:, pan * t : pan * t + W].copy()
            for i in range(objects):
                w, h = size[i]
                if ground_plane:  # taller the lower they stand: 0.6x at the top, 1.3x at the bottom
                    grow = 0.6 + 0.7 * float(np.clip(pos[i, 1], 0, H)) / H
                    w, h = max(8, int(w * grow)), max(16, int(h * grow))
                for d, limit in ((0, W - w), (1, H - h)):
                    if not 0 <= pos[i, d] <= limit:
                        vel[i, d] *= -1
                        pos[i, d] = np.clip(pos[i, d], 0, limit)
                x, y = int(pos[i, 0]), int(pos[i, 1])
                img[y : y + h, x : x + w] = (
                    patches[i] if patches[i].shape[:2] == (h, w) else cv2.resize(patches[i], (w, h))
                )
                truth[t, i] = (x, y, x + w, y + h)
                if not missed[t, i]:
                    j = rng.normal(0, 1.5, 4)
                    low = 0.85 if clean else 0.55
                    if not clean and rng.random() < 0.08:  # a loose box around the object
                        cx, cy = x + w / 2, y + h / 2
                        loose = (cx - 0.8 * w, cy - 0.8 * h, cx + 0.8 * w, cy + 0.8 * h)
                        score = float(rng.uniform(0.55, 0.8))
                        rows.append((t, *loose, score))
                        false_boxes.append((t, *loose, score))
                    else:
                        rows.append((t, *(truth[t, i] + j), float(rng.uniform(low, 0.97))))
                pos[i] += vel[i]
            blinks = blinker is not None and rng.random() < 0.5
            if blinks and iou_matrix(np.array([blinker]), truth[t]).max() == 0:
                score = float(rng.uniform(0.55, 0.85))
                box = tuple(np.array(blinker) + rng.normal(0, 1.5, 4))  # jittered as objects are
                rows.append((t, *box, score))
                false_boxes.append((t, *box, score))
            if rng.random() < 0.04:
                fw, fh = int(rng.integers(45, 70)), int(rng.integers(60, 100))
                fx, fy = rng.uniform(55, W - 55 - fw), rng.uniform(55, H - 55 - fh)
                box = (fx, fy, fx + fw, fy + fh)
                if iou_matrix(np.array([box]), truth[t]).max() == 0:
                    score = float(rng.uniform(0.82, 0.95))
                    rows.append((t, *box, score))
                    false_boxes.append((t, *box, score))
            write(img)
    rows.sort(key=lambda r: r[0])
    arr = np.array(rows)
    dets = VideoDetections.from_rows(arr[:, 0].astype(int), arr[:, 1:5], arr[:, 5], num_frames=n)
    return dets, truth, missed, false_boxes


def expected_hard_positives(missed: np.ndarray, k: int) -> set[tuple[int, int]]:
    """(frame, object) pairs inside a bridged miss run of length <= k."""
    n, objects = missed.shape
    out = set()
    for i in range(objects):
        t = 0
        while t < n:
            if missed[t, i]:
                end = t
                while end < n and missed[end, i]:
                    end += 1
                if t > 0 and end < n and end - t <= k:
                    out.update((u, i) for u in range(t, end))
                t = end
            else:
                t += 1
    return out


def evaluate(args: argparse.Namespace, preset: str, cases: list) -> None:
    params, hp = MinerParams.preset(preset), HardPositiveParams(**args.hp)
    hp_tp = hp_found = hp_expected = 0
    hn_tp = hn_found = hn_expected = 0
    for path, (dets, truth, missed, false_boxes) in cases:
        expected = expected_hard_positives(missed, hp.max_gap)
        hp_expected += len(expected)
        w = params.window
        examined_false = [
            f for f in false_boxes if w <= f[0] < args.frames - w and f[5] >= params.score_threshold
        ]
        hn_expected += len(examined_false)
        reader = VideoReader(path)
        matched: set[tuple[int, int]] = set()
        for fv in iter_flickers(reader, dets, params, W, H, hard_positives=hp):
            for p in fv.hard_positives:
                hp_found += 1
                ious = iou_matrix(p.box[None], truth[fv.index])[0]
                i = int(ious.argmax())
                if ious[i] >= 0.5 and (fv.index, i) in expected and (fv.index, i) not in matched:
                    matched.add((fv.index, i))
                    hp_tp += 1
            for box in fv.xyxy[fv.hard_negative]:
                hn_found += 1
                hn_tp += any(
                    f[0] == fv.index and iou_matrix(box[None], np.array([f[1:5]]))[0, 0] > 0.9
                    for f in examined_false
                )

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    print(f"preset {preset}:")
    print(f"  hard positives: expected {hp_expected}, found {hp_found}, correct {hp_tp}: "
          f"precision {ratio(hp_tp, hp_found):.3f} (target >= 0.9), "
          f"recall {ratio(hp_tp, hp_expected):.3f} (target >= 0.8)")  # fmt: skip
    print(
        f"  hard negatives: expected {hn_expected}, found {hn_found}, correct {hn_tp}: "
        f"precision {ratio(hn_tp, hn_found):.3f}, recall {ratio(hn_tp, hn_expected):.3f}"
    )


def _override(item: str) -> tuple[str, object]:
    name, _, value = item.partition("=")
    return name, yaml.safe_load(value)  # numbers and true/false as YAML reads them


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clean", action="store_true", help="without the real failure modes")
    ap.add_argument(
        "--ground-plane", action="store_true",
        help="objects of one size growing down the image (a fixed camera's view)",
    )  # fmt: skip
    ap.add_argument("--presets", default="seed,recall")
    ap.add_argument("--pan", type=int, default=0, help="the camera pans this many px a frame")
    ap.add_argument(
        "--hp", action="append", default=[], metavar="NAME=VALUE",
        help="a HardPositiveParams value other than its default (repeatable), e.g. max_gap=8",
    )  # fmt: skip
    args = ap.parse_args()
    args.hp = dict(_override(item) for item in args.hp)
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench_hardpos_"))
    k = MISS_RUN
    cases = []
    for v in range(args.videos):
        path = tmp / f"v{v}.mp4"
        cases.append((path, make_case(path, args.frames, rng, k, clean=args.clean, pan=args.pan,
                                      ground_plane=args.ground_plane)))  # fmt: skip
    kind = "clean" if args.clean else "with real failure modes"
    kind += ", on a ground plane" if args.ground_plane else ""
    kind += f", the camera panning {args.pan} px a frame" if args.pan else ""
    print(f"{args.videos} videos x {args.frames} frames, {W}x{H}, misses of 1..{k} frames, {kind}")
    for preset in args.presets.split(","):
        evaluate(args, preset, cases)


if __name__ == "__main__":
    sys.exit(main())
