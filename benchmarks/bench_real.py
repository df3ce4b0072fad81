"""Mining quality on real annotated footage: the audit table of every preset.

Reads PETS09-S2L1 (video and MOTChallenge ground truth) from ``../shared/data/pets09-s2l1/``
beside the repository, or from ``--data``; skips with a message where it is absent (the data
is licensed for research use and is not part of the repository). Detects people with the HOG
backend (person boxes, ``flickermine detect`` defaults, cached in ``--cache``), mines with each
preset (hard positives included) and scores the result with ``flickermine audit``.

Usage: ``python benchmarks/bench_real.py [--data DIR] [--cache DIR] [--presets seed,recall]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from flickermine.audit import audit
from flickermine.detect import build_detector, detect_to_file
from flickermine.mine import HardPositiveParams, MinerParams, mine_video
from flickermine.mine.params import PRESETS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pets09-s2l1"
COLUMNS = (
    ("detections", "valid dets", "{}"),
    ("false_positives", "det. FPs", "{}"),
    ("hard_negatives", "HN", "{}"),
    ("hard_negative_precision", "HN prec.", "{:.3f}"),
    ("false_positives_flagged", "FPs flagged", "{:.3f}"),
    ("hard_positives", "HP", "{}"),
    ("hard_positive_precision", "HP prec.", "{:.3f}"),
    ("pseudo_positives", "PP", "{}"),
    ("pseudo_positive_precision", "PP prec.", "{:.3f}"),
    ("median_area_ratio", "area ratio", "{:.2f}"),
)


def _cell(fmt: str, value: object) -> str:
    return "-" if value is None else fmt.format(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fm-bench-real")
    ap.add_argument("--presets", default=",".join(PRESETS))
    args = ap.parse_args()
    video, gt = args.data / "PETS09-S2L1.avi", args.data / "gt.txt"
    if not (video.is_file() and gt.is_file()):
        print(f"skipped: PETS09-S2L1 not found in {args.data} (PETS09-S2L1.avi and gt.txt; see "
              "the data's README); give its folder with --data")  # fmt: skip
        return 0
    dets = args.cache / "PETS09-S2L1.parquet"
    t0 = time.perf_counter()
    detect_to_file(video, build_detector("hog"), dets)  # reused when it exists
    print(f"HOG detections: {dets} ({time.perf_counter() - t0:.0f} s)")
    head = f"{'preset':<10}" + "".join(f"{label:>12}" for _, label, _ in COLUMNS) + "    time"
    print(head)
    for name in args.presets.split(","):
        out = args.cache / f"mined-{name}"
        t0 = time.perf_counter()
        mine_video(video, dets, out, MinerParams.preset(name), overwrite=True,
                   hard_positives=HardPositiveParams())  # fmt: skip
        seconds = time.perf_counter() - t0
        total = audit(out, gt)["total"]
        cells = "".join(f"{_cell(fmt, total[key]):>12}" for key, _, fmt in COLUMNS)
        print(f"{name:<10}{cells}  {seconds:5.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
