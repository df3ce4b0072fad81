"""audit: mining outputs scored against hand-made ground truth with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flickermine.audit import AuditError, audit, read_mot_gt
from flickermine.cli.main import main


def _mined(folder: Path, rows: list[tuple], frames: int = 20, stem: str = "clip") -> Path:
    """A mining output holding a verdict table of ``(frame, x1, y1, x2, y2, verdict)`` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 6
    table = pa.table(
        {
            "frame": pa.array(cols[0], pa.int32()),
            "x1": pa.array(cols[1], pa.float32()),
            "y1": pa.array(cols[2], pa.float32()),
            "x2": pa.array(cols[3], pa.float32()),
            "y2": pa.array(cols[4], pa.float32()),
            "verdict": pa.array(cols[5], pa.string()),
            "reason": pa.array(["r"] * len(rows), pa.string()),
        }
    )
    pq.write_table(table, folder / f"{stem}.verdicts.parquet")
    (folder / f"{stem}.json").write_text(json.dumps({"video": f"{stem}.mp4", "frames": frames}))
    return folder


# Ground truth: frame 1 (1-based) holds person A at (10,10,40x80), counted, and a hidden
# person B at (200,10,40x80), not counted; frame 2 holds A only.
GT = "1,1,10,10,40,80,1,-1,-1,-1\n1,2,200,10,40,80,0,-1,-1,-1\n2,1,12,10,40,80,1,-1,-1,-1\n"


@pytest.fixture
def gt(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(GT)
    return path


def test_figures_computed_by_hand(tmp_path, gt):
    rows = [
        (0, 10, 10, 50, 90, "pseudo_positive"),  # on A: true
        (0, 100, 100, 140, 180, "hard_negative"),  # on nothing: a false positive flagged
        (0, 200, 10, 240, 90, "hard_negative"),  # on hidden B: ignored
        (0, 300, 10, 340, 90, "pseudo_positive"),  # on nothing: false positive, not flagged
        (1, 12, 10, 52, 90, "hard_negative"),  # on A: a real object flagged (wrong)
        (1, 11, 10, 51, 90, "hard_positive"),  # on A: right
        (1, 400, 10, 440, 90, "hard_positive"),  # on nothing: wrong
        (1, 10, 0, 70, 110, "pseudo_positive"),  # loose on A: IoU 3200/6600 < 0.5 -> false
    ]
    result = audit(_mined(tmp_path / "m", rows), gt)
    t = result["total"]
    assert t["detections"] == 6 and t["false_positives"] == 3 and t["ignored"] == 1
    assert t["hard_negatives"] == 3
    # Of the two scored hard negatives (B's is ignored) one is a false positive.
    assert t["hard_negative_precision"] == 0.5
    assert t["false_positives_flagged"] == round(1 / 3, 4)
    assert (t["hard_positives"], t["hard_positive_precision"]) == (2, 0.5)
    assert (t["pseudo_positives"], t["pseudo_positive_precision"]) == (3, round(1 / 3, 4))
    # Matched detections: A in frame 0 (40x80 on 40x80) and A in frame 1 (40x80 on 40x80).
    assert t["median_area_ratio"] == 1.0
    assert result["videos"]["clip"]["hard_negative_reasons"] == {"r": 3}


def test_empty_mining_output_has_no_ratios(tmp_path, gt):
    t = audit(_mined(tmp_path / "m", []), gt)["total"]
    assert t["detections"] == 0 and t["hard_negative_precision"] is None
    assert t["median_area_ratio"] is None


def test_ground_truth_beyond_the_video_is_an_error(tmp_path, gt):
    with pytest.raises(AuditError, match=r"gt\.txt: annotates frame 2 .* video has 1 frames"):
        audit(_mined(tmp_path / "m", [], frames=1), gt)


@pytest.mark.parametrize(
    ("line", "where"),
    [("1,1,10,10,40\n", ":2:"), ("x,1,10,10,40,80,1\n", ":2:"), ("0,1,1,1,4,4,1\n", ":2:")],
)
def test_malformed_ground_truth_names_file_and_line(tmp_path, line, where):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,10,10,40,80,1\n" + line)
    with pytest.raises(AuditError, match=f"gt.txt{where}"):
        read_mot_gt(path)


def test_coco_ground_truth_with_video_and_frame_fields(tmp_path):
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "video": "clip.mp4", "frame": 1},
            {"id": 2, "file_name": "b.jpg", "video": "other.mp4", "frame": 1},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 80]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [100, 100, 40, 80]},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    rows = [(0, 10, 10, 50, 90, "pseudo_positive"), (0, 100, 100, 140, 180, "hard_negative")]
    t = audit(_mined(tmp_path / "m", rows), tmp_path / "gt.json")["total"]
    # other.mp4's box is not clip.mp4's: the hard negative is a real false positive.
    assert t["hard_negative_precision"] == 1.0 and t["pseudo_positive_precision"] == 1.0


def test_cli_prints_and_writes_json(tmp_path, gt, capsys):
    mined = _mined(tmp_path / "m", [(0, 10, 10, 50, 90, "pseudo_positive")])
    assert main(["audit", str(mined), "--gt", str(gt)]) == 0
    out = capsys.readouterr().out
    assert "pseudo-positives" in out and "1.000" in out
    assert json.loads((mined / "audit.json").read_text())["total"]["pseudo_positives"] == 1
    assert main(["audit", str(tmp_path), "--gt", str(gt)]) == 2
    assert "not a mining output" in capsys.readouterr().err


def test_audit_of_a_real_mining_run(tmp_path):
    """The miner's own output, read by the audit: the flicker is a false positive."""
    from flickermine.io import save_detections
    from flickermine.mine import mine_video

    from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

    n = 16
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(n)})
    video = write_video(tmp_path / "walk.mp4", render_frames(n, sprites=[a]))
    dets = detections([*sprite_rows(a, range(n)), (8, 180.0, 60.0, 228.0, 124.0, 0.9)], n)
    save_detections(dets, tmp_path / "walk.parquet")
    mine_video(video, tmp_path / "walk.parquet", tmp_path / "out")
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{t + 1},1,{a.box(t)[0]},{a.box(t)[1]},48,64,1\n" for t in range(n)))
    t = audit(tmp_path / "out", gt)["total"]
    assert (t["hard_negatives"], t["hard_negative_precision"]) == (1, 1.0)
    assert t["pseudo_positive_precision"] == 1.0 and t["false_positives_flagged"] == 1.0


def test_sweep_writes_the_frontier_and_a_config_mine_accepts(tmp_path, capsys):
    from flickermine.io import save_detections
    from flickermine.mine import mine_video
    from flickermine.mine.params import read_params_file
    from flickermine.tune import DEFAULT_GRID

    from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

    n = 16
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(n)})
    video = write_video(tmp_path / "walk.mp4", render_frames(n, sprites=[a]))
    rows = [*sprite_rows(a, range(n)), (8, 180.0, 60.0, 228.0, 124.0, 0.85)]
    save_detections(detections(rows, n), tmp_path / "walk.parquet")
    mine_video(video, tmp_path / "walk.parquet", tmp_path / "out")
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{t + 1},1,{a.box(t)[0]},{a.box(t)[1]},48,64,1\n" for t in range(n)))
    assert main(["audit", str(tmp_path / "out"), "--gt", str(gt), "--sweep"]) == 0
    sweep = json.loads((tmp_path / "out" / "sweep" / "sweep.json").read_text())
    assert len(sweep) == int(np.prod([len(v) for v in DEFAULT_GRID.values()]))
    # The flicker (score 0.85) is found wherever the threshold lets it be a candidate.
    by_thr = {r["params"]["score_threshold"]: r["hard_negatives"] for r in sweep}
    assert by_thr[0.8] == 1
    assert (tmp_path / "out" / "sweep" / "frontier.png").stat().st_size > 1000
    best = read_params_file(tmp_path / "out" / "sweep" / "best.yaml")
    assert best["score_threshold"] <= 0.8
    argv = [
        "mine",
        str(video),
        "--detections",
        str(tmp_path / "walk.parquet"),
        "--out",
        str(tmp_path / "again"),
        "--config",
        str(tmp_path / "out" / "sweep" / "best.yaml"),
    ]
    assert main([*argv, "-q"]) == 0
    assert "best at precision >= 0.9: 1 hard negatives" in capsys.readouterr().out
