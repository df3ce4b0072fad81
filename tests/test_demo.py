from __future__ import annotations

import json

import pytest

from flickermine.cli.main import main


@pytest.mark.slow
def test_demo_detects_and_mines_the_bundled_clip(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    out_text = capsys.readouterr().out
    assert "hard negatives" in out_text and "hard positives" in out_text
    assert (out / "detections" / "vtest_clip.parquet").is_file()
    assert (out / "SUMMARY.md").is_file()
    pictures = list((out / "visualizations" / "vtest_clip").glob("frame*.jpg"))
    lines = (out / "vtest_clip.txt").read_text().splitlines()
    assert pictures and len(pictures) == sum(1 for ln in lines if ln.endswith(".jpg"))
    summary = json.loads((out / "vtest_clip.json").read_text())
    assert summary["hard_negatives"] > 0 and summary["hard_positives"] > 0
    assert main(["demo", "--out", str(out)]) == 2  # an earlier demo is not silently replaced
