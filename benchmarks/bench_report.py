"""How the review report copes with a large run: 10,000 mined examples.

Builds a synthetic mining output (frames with 20 hard negatives each, as the miner writes them:
summary, verdict table, frame pictures), writes the report (thumbnails included) and opens it in
headless Chromium (Debian's ``chromium`` + ``chromium-driver``, through Selenium): the time
until the page's script has built every card, and the time to scroll to the last card with its
thumbnail loaded.

Usage: ``python benchmarks/bench_report.py [--examples 10000]``
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
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine.report.html import write_report

PER_FRAME = 20


def make_output(folder: Path, examples: int) -> None:
    frames = -(-examples // PER_FRAME)
    rng = np.random.default_rng(0)
    (folder / "frames" / "clip").mkdir(parents=True)
    (folder / "visualizations" / "clip").mkdir(parents=True)
    image = cv2.GaussianBlur(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), (0, 0), 3)
    _, jpg = cv2.imencode(".jpg", image)
    rows: dict[str, list] = {k: [] for k in ("frame", "frame_number", "det", "x1", "y1", "x2",
                                             "y2", "score", "verdict", "reason")}  # fmt: skip
    for t in range(frames):
        for name in ("frames", "visualizations"):
            (folder / name / "clip" / f"frame{t + 1}.jpg").write_bytes(jpg.tobytes())
        for k in range(min(PER_FRAME, examples - t * PER_FRAME)):
            x, y = 20 + 30 * k, 40 + (t % 7) * 20
            for key, value in (("frame", t), ("frame_number", t + 1), ("det", k), ("x1", x),
                               ("y1", y), ("x2", x + 25), ("y2", y + 60),
                               ("score", float(rng.uniform(0.5, 0.98))),
                               ("verdict", "hard_negative"),
                               ("reason", "hard negative: no support on either side")):  # fmt: skip
                rows[key].append(value)
    pq.write_table(pa.table(rows), folder / "clip.verdicts.parquet")
    (folder / "clip.json").write_text(json.dumps({"video": "clip.mp4", "frames": frames}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_report_"))
    make_output(tmp / "mined", args.examples)
    t0 = time.perf_counter()
    write_report([tmp / "mined"], tmp / "report")
    written = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_report([tmp / "mined"], tmp / "report", overwrite=True)
    again = time.perf_counter() - t0
    print(f"{args.examples} examples: report written in {written:.1f} s "
          f"({again:.1f} s again: thumbnails kept)")  # fmt: skip
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("skipped the browser: chromium and chromium-driver are not installed")
        return 0
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        t0 = time.perf_counter()
        driver.get((tmp / "report" / "index.html").as_uri())
        while not driver.execute_script("return window.flickermineReady"):
            time.sleep(0.02)
        ready = time.perf_counter() - t0
        in_page = driver.execute_script("return window.flickermineReady")
        cards = driver.execute_script("return document.querySelectorAll('.card').length")
        t0 = time.perf_counter()
        driver.execute_script(
            "const c = document.querySelectorAll('.card'); c[c.length - 1].scrollIntoView();"
        )
        while not driver.execute_script(
            "const i = document.querySelectorAll('.card img'); const l = i[i.length - 1];"
            "return l.complete && l.naturalWidth > 0;"
        ):
            time.sleep(0.02)
        scrolled = time.perf_counter() - t0
    finally:
        driver.quit()
    print(f"browser: {cards} cards built {ready:.2f} s after navigation "
          f"({in_page / 1000:.2f} s by the page's clock); last thumbnail shown "
          f"{scrolled:.2f} s after scrolling to the end")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
