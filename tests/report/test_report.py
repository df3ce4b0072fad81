"""The review report in a real browser (Debian's chromium + chromium-driver), the review video,
and decisions honoured by dataset merge."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from flickermine.cli.main import main
from flickermine.mine import HardPositiveParams, mine_video
from flickermine.video import VideoReader

from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

N = 24
ODD = "<img src=x onerror=alert(1)>"  # a video name that must show as text


@pytest.fixture(scope="module")
def mined(tmp_path_factory) -> Path:
    """A real mining output: a flicker in frame 10 (1-based), a miss in frame 17, for a video
    with an HTML-like name."""
    tmp = tmp_path_factory.mktemp("mined")
    a = Sprite(texture(7, 64, 48), {t: (60 + 3 * t, 80) for t in range(N)})
    rows = [*sprite_rows(a, [t for t in range(N) if t != 16]), (9, 200.0, 60.0, 248.0, 124.0, 0.9)]
    video = write_video(tmp / f"{ODD}.mp4", render_frames(N, sprites=[a]))
    mine_video(video, detections(sorted(rows), N), tmp / "out", hard_positives=HardPositiveParams())
    return tmp / "out"


def _browser(download_dir: Path):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromium-driver (Debian packages) are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})  # fmt: skip
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(download_dir)})  # fmt: skip
    return driver


def _wait(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_report_in_a_real_browser(mined, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report = tmp_path / "report"
    assert main(["report", str(mined), "--out", str(report), "--pseudo-positives", "-q"]) == 0
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _browser(downloads)
    try:
        driver.get((report / "index.html").as_uri())
        _wait(lambda: driver.execute_script("return window.flickermineReady"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        cards = driver.find_elements(By.CSS_SELECTOR, ".card")
        # Frame 10: the flicker and the walker (pseudo-positive); frame 17: the miss.
        kinds = sorted(c.get_attribute("class").split()[1] for c in cards)
        assert kinds == ["hard_negative", "hard_positive", "pseudo_positive"]
        # The video's name is text, not markup: no image element with src "x".
        assert ODD in driver.find_element(By.TAG_NAME, "body").text
        assert not driver.find_elements(By.CSS_SELECTOR, 'img[src="x"]')
        Select(driver.find_element(By.ID, "f-verdict")).select_by_value("hard_negative")
        assert len(driver.find_elements(By.CSS_SELECTOR, ".card")) == 1
        driver.find_element(By.CSS_SELECTOR, ".card .reject").click()
        driver.find_element(By.ID, "export").click()
        exported = _wait(lambda: [p for p in downloads.glob("decisions*.json")])
        decisions = json.loads(exported[0].read_text())
        assert decisions["decisions"] == {f"{ODD}/10/d1": "rejected"}
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        driver.quit()


def test_merge_honours_decisions(mined, tmp_path, capsys):
    coco = tmp_path / "c.json"
    coco.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "p"}]}')
    decisions = tmp_path / "decisions.json"
    decisions.write_text(json.dumps({"decisions": {f"{ODD}/10/d1": "rejected",
                                                   f"{ODD}/17/m0": "rejected",
                                                   f"{ODD}/10/d0": "accepted"}}))  # fmt: skip
    argv = ["dataset", "merge", str(coco), str(mined), "--images", str(tmp_path / "img"),
            "--category", "p", "--out", str(tmp_path / "m.json")]  # fmt: skip
    assert main([*argv, "--decisions", str(decisions)]) == 0
    out = capsys.readouterr().out
    assert "1 hard negatives, 1 hard positives, 0 pseudo-positives" in out
    merged = json.loads((tmp_path / "m.json").read_text())
    by_frame = {i["flickermine"]["frame"]: i for i in merged["images"]}
    assert by_frame[10]["flickermine"]["hard_negatives"] == []  # rejected: not recorded
    assert not [a for a in merged["annotations"] if a["image_id"] == by_frame[17]["id"]]
    assert len([a for a in merged["annotations"] if a["image_id"] == by_frame[10]["id"]]) == 1
    # Decisions naming nothing of these inputs: another run's.
    decisions.write_text(json.dumps({"decisions": {"other/3/d0": "rejected"}}))
    assert main([*argv, "--overwrite", "--decisions", str(decisions)]) == 2
    assert "name no mined example of these inputs (other/3/d0)" in capsys.readouterr().err


def test_bad_inputs_are_clear_errors(mined, tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r"), "-q"]) == 2
    assert "not a mining output" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(mined, broken)
    for picture in (broken / "frames").rglob("*.jpg"):
        picture.unlink()
    assert main(["report", str(broken), "--out", str(tmp_path / "r2"), "-q"]) == 2
    assert "is missing or unreadable (was the mining output moved" in capsys.readouterr().err
    bad = tmp_path / "decisions.json"
    bad.write_text('{"something": 1}')
    coco = tmp_path / "c.json"
    coco.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "p"}]}')
    assert main(["dataset", "merge", str(coco), str(mined), "--images", str(tmp_path / "i"),
                 "--category", "p", "--out", str(tmp_path / "m.json"), "--decisions",
                 str(bad)]) == 2  # fmt: skip
    assert "not a decisions file" in capsys.readouterr().err


def test_review_video_has_every_frame(mined, tmp_path):
    assert main(["report", str(mined), "--out", str(tmp_path / "r"), "--video", "-q"]) == 0
    (clip,) = (tmp_path / "r" / "videos").glob("*.mp4")
    assert VideoReader(clip).num_frames == N
    frames = list(VideoReader(clip).frames())
    assert len(frames) == N
    # Frame 10 (0-based 9) shows the flicker's red box at its left edge (BGR).
    b, g, r = frames[9].bgr[90, 201].astype(int)
    assert r > 150 and g < 100 and b < 100
