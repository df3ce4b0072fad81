from __future__ import annotations

import pytest

from flickermine.cli.main import main


@pytest.mark.slow
def test_demo_detects_and_mines_the_bundled_clip(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    assert "hard negatives" in capsys.readouterr().out
    assert (out / "detections" / "vtest_clip.parquet").is_file()
    assert (out / "SUMMARY.md").is_file()
    pictures = list((out / "visualizations" / "vtest_clip").glob("frame*.jpg"))
    lines = (out / "vtest_clip.txt").read_text().splitlines()
    assert pictures and len(pictures) == sum(1 for ln in lines if ln.endswith(".jpg"))
    assert main(["demo", "--out", str(out)]) == 2  # an earlier demo is not silently replaced
