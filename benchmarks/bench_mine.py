"""Benchmark of ``flickermine mine``.

Prints, on a synthetic 768x576 video of >= 795 frames with >= 5 detections per frame:

* decode-only time with the same reader (``VideoReader``, every frame decoded, nothing else),
* mining time (``mine_video``: decoding, judging, writing every output) and their ratio
  (target <= 1.5); both are medians of rounds run in alternation (the faster of the reader's
  two threading modes is the decode baseline), because this kind of machine drifts in speed,
* the decoder child alone with the images the miner reads and nothing judged (the floor of
  the mining time with this design),
* the ratio against a naive implementation that seeks to every candidate frame and to each of
  its neighbours with OpenCV, as the seed did (target >= 50x; timed on a sample of frames and
  extrapolated to the whole video, because the full run takes many minutes),
* peak resident memory (the miner's process plus its decoder child) mining a 20,000-frame
  video vs an 800-frame one, each in a fresh process (target: within 2x).

Usage: ``python benchmarks/bench_mine.py [--frames 795] [--rounds 7] [--naive-frames 40]
[--no-memory]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from flickermine.decoding import PixelNeeds, ProcessDecoder
from flickermine.io import load_detections
from flickermine.mine import MinerParams, mine_video
from flickermine.mine.flicker import iter_flickers
from flickermine.video import VideoReader

from _synth import make_video


def decode_only(video: Path, threads: bool) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in VideoReader(video, threads=threads))
    elapsed = time.perf_counter() - start
    assert n > 0
    return elapsed


def mine_once(video: Path, dets: Path) -> tuple[float, dict]:
    out = Path(tempfile.mkdtemp(prefix="bench_mine_"))
    try:
        start = time.perf_counter()
        summary = mine_video(video, dets, out)
        return time.perf_counter() - start, summary
    finally:
        shutil.rmtree(out)


def miner_needs(video: Path, dets: Path) -> PixelNeeds:
    """The images ``mine_video`` (default parameters) has its decoder ship."""
    reader = VideoReader(video)
    asked: list[PixelNeeds] = []

    def frames(needs: PixelNeeds) -> list:
        asked.append(needs)
        return []  # nothing judged

    for _ in iter_flickers(frames, load_detections(dets), MinerParams(), reader.width,
                           reader.height, threads=0):  # fmt: skip
        pass
    return asked[0]


def decoder_alone(video: Path, needs: PixelNeeds) -> float:
    """The decoder child as ``mine_video`` runs it (opened, started, given the needs, every
    frame received), with nothing else done with the frames."""
    start = time.perf_counter()
    with ProcessDecoder(VideoReader(video)) as decoder:
        for _ in decoder.frames(needs, limit=len(needs.gray)):
            pass
    return time.perf_counter() - start


def interleaved(
    video: Path, dets: Path, rounds: int
) -> tuple[float, float, float, dict, list[float]]:
    """Median decode-only time (the faster of the reader's two threading modes), median time
    of the decoder child alone and median mining time, measured in alternation so that the
    machine's speed drifts affect all; also each round's own ratio (its mining time over its
    faster decode)."""
    needs = miner_needs(video, dets)
    decode: dict[bool, list[float]] = {True: [], False: []}
    alone: list[float] = []
    mining: list[float] = []
    summary: dict = {}
    for _ in range(rounds):
        for threads in (True, False):
            decode[threads].append(decode_only(video, threads))
        alone.append(decoder_alone(video, needs))
        seconds, summary = mine_once(video, dets)
        mining.append(seconds)
    per_round = [m / min(a, b) for m, a, b in zip(mining, decode[True], decode[False], strict=True)]
    decode_s = min(map(statistics.median, decode.values()))
    return decode_s, statistics.median(alone), statistics.median(mining), summary, per_round


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def naive_seconds_per_frame(video: Path, dets_path: Path, sample: int) -> float:
    """The seed's access pattern: seek + read the frame and each of its 2*window neighbours,
    template-match every candidate against every non-empty neighbour until supported."""
    p = MinerParams()
    dets = load_detections(dets_path)
    cap = cv2.VideoCapture(str(video))
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    n = dets.num_frames
    valid = [
        [b for b, s in zip(dets.xyxy[dets.frame_slice(t)], dets.score[dets.frame_slice(t)],
                           strict=True) if s >= p.score_threshold]
        for t in range(n)
    ]  # fmt: skip

    def read(t: int) -> np.ndarray:
        cap.set(cv2.CAP_PROP_POS_FRAMES, t)
        ok, img = cap.read()
        assert ok
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)

    frames = [t for t in range(p.window, n - p.window) if valid[t]]
    step = max(1, len(frames) // sample)
    chosen = frames[::step][:sample]
    start = time.perf_counter()
    for t in chosen:
        gray = read(t)
        neighbours = {u: read(u) for u in range(t - p.window, t + p.window + 1) if u != t}
        for box in valid[t]:
            x1, y1, x2, y2 = (int(v) for v in box)
            patch = gray[y1:y2, x1:x2]
            if patch.size == 0:
                continue
            rx1, ry1 = max(x1 - p.search_margin, 0), max(y1 - p.search_margin, 0)
            rx2, ry2 = min(x2 + p.search_margin, width), min(y2 + p.search_margin, height)
            for direction in (-1, 1):
                for k in range(1, p.window + 1):
                    u = t + direction * k
                    if not valid[u]:
                        continue
                    res = cv2.matchTemplate(neighbours[u][ry1:ry2, rx1:rx2], patch,
                                            cv2.TM_CCOEFF_NORMED)  # fmt: skip
                    _, best, _, (lx, ly) = cv2.minMaxLoc(res)
                    if best < p.similarity_threshold:
                        break
                    tracked = (rx1 + lx, ry1 + ly, rx1 + lx + x2 - x1, ry1 + ly + y2 - y1)
                    if any(max(_iou(b, tracked), _iou(b, box)) > p.iou_threshold
                           for b in valid[u]):  # fmt: skip
                        break
    elapsed = time.perf_counter() - start
    cap.release()
    return elapsed / len(chosen)


def peak_rss_mb(video: Path, dets: Path) -> float:
    """Peak RSS (MiB) of a fresh process that mines ``video``, plus that of its decoder child
    (their shared memory is counted in both, so this overstates the total)."""
    code = (
        "import resource, sys, tempfile\n"
        "from flickermine.mine import mine_video\n"
        "mine_video(sys.argv[1], sys.argv[2], tempfile.mkdtemp())\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(video), str(dets)], check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    parent, child = (int(v) for v in out.stdout.split()[-2:])
    return (parent + child) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=795)
    ap.add_argument("--naive-frames", type=int, default=40, help="frames timed for the naive run")
    ap.add_argument("--rounds", type=int, default=7, help="alternating timing rounds (medians)")
    ap.add_argument("--no-memory", action="store_true", help="skip the 20,000-frame memory run")
    args = ap.parse_args()

    video, dets = make_video(args.frames)
    d = load_detections(dets)
    reader = VideoReader(video)
    print(f"video: {reader.num_frames} frames {reader.width}x{reader.height}, "
          f"{len(d) / d.num_frames:.1f} detections per frame")  # fmt: skip
    decode, alone, mining, summary, per_round = interleaved(video, dets, args.rounds)
    print(f"decode only        {decode:8.2f} s   (median of {args.rounds})")
    print(f"decoder child alone{alone:8.2f} s   (the images the miner reads, nothing judged: "
          f"{alone / decode:.2f}x decode)")  # fmt: skip
    print(f"mine (all outputs) {mining:8.2f} s   ({summary['hard_negatives']} hard negatives, "
          f"{summary['frames_written']} frames written)")  # fmt: skip
    print(f"mine / decode      {mining / decode:8.2f}   (target <= 1.5; rounds "
          f"{min(per_round):.2f}-{max(per_round):.2f})")  # fmt: skip
    per_frame = naive_seconds_per_frame(video, dets, args.naive_frames)
    examined = args.frames - 2 * MinerParams().window
    naive_total = per_frame * examined
    print(f"naive seek-per-frame ~{naive_total:8.1f} s  (extrapolated from {args.naive_frames} "
          f"frames at {per_frame * 1000:.0f} ms/frame)")  # fmt: skip
    print(f"naive / mine       {naive_total / mining:8.1f}x  (target >= 50x)")
    if not args.no_memory:
        small = make_video(800, 384, 288, seed=1)
        large = make_video(20000, 384, 288, seed=1)
        rss_small, rss_large = peak_rss_mb(*small), peak_rss_mb(*large)
        print(f"peak RSS  800 frames {rss_small:7.1f} MiB, 20000 frames {rss_large:7.1f} MiB, "
              f"ratio {rss_large / rss_small:.2f}  (target <= 2)")  # fmt: skip
    print(json.dumps({"decode_s": round(decode, 3), "decoder_alone_s": round(alone, 3),
                      "mine_s": round(mining, 3),
                      "naive_s_est": round(naive_total, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
