"""flickermine run: a two-round loop on a tiny synthetic video, stages skipped or re-run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flickermine.cli.main import main
from flickermine.errors import ConfigError
from flickermine.pipeline import load_run_config

from factories import Sprite, render_frames, texture, write_video

pytest.importorskip("torch")

N = 90


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """An 90-frame video of two walking objects and its MOTChallenge ground truth."""
    root = tmp_path_factory.mktemp("scene")
    sprites = [
        Sprite(texture(3, 40, 24), {t: (20 + t, 40) for t in range(N)}),
        Sprite(texture(5, 40, 24), {t: (200 - t, 110) for t in range(N)}),
    ]
    write_video(root / "walk.mp4", render_frames(N, 240, 180, sprites))
    lines = [
        f"{t + 1},{k + 1},{s.box(t)[0]},{s.box(t)[1]},24,40,1,-1,-1,-1"
        for t in range(N)
        for k, s in enumerate(sprites)
    ]
    (root / "gt.txt").write_text("\n".join(lines) + "\n")
    return root


def config(scene: Path, folder: Path, **changes) -> Path:
    tiny = {"model": "fasterrcnn_tiny", "iterations": 3, "batch_size": 2, "lr": 0.01,
            "min_size": 96, "max_size": 128, "log_every": 1, "checkpoint_every": 2}  # fmt: skip
    cfg = {
        "out": str(folder / "run"),
        "category": "person",
        "data": {
            "labelled": {
                "video": str(scene / "walk.mp4"),
                "gt": str(scene / "gt.txt"),
                "frames": "0:20:2",
            },
            "unlabelled": {
                "video": str(scene / "walk.mp4"),
                "gt": str(scene / "gt.txt"),
                "frames": "30:55",
            },
            "test": {
                "video": str(scene / "walk.mp4"),
                "gt": str(scene / "gt.txt"),
                "frames": "65:90:5",
            },
        },
        "start": {"train": dict(tiny)},
        "detect": {"score_threshold": 0.0, "batch_size": 2},
        "mine": {
            "preset": "seed",
            "score_threshold": 0.05,
            "support_score": 0.01,
            "min_area": 100,
            "border_margin": 5,
            "window": 2,
        },
        "finetune": dict(tiny),
        "evaluate": {"score_threshold": 0.3},
        "rounds": 2,
        "seeds": [0, 1],
        "arms": [{"name": "control", "mine": None}, {"name": "mined", "mine": {}}],
    }
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def stage_lines(err: str, what: str) -> list[str]:
    return sorted({line.split()[0] for line in err.splitlines() if line.endswith(what)})


def test_two_rounds_then_every_stage_skipped_then_only_what_changed(scene, tmp_path, capsys):
    cfg = config(scene, tmp_path)
    assert main(["run", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert stage_lines(err, "running") == sorted(
        ["prepare", "start", "detect", "mine", "merge", "train", "evaluate"]
    )
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["rows"]) == 2 * 2 * 2  # rounds x arms x seeds
    assert {(e["round"], e["arm"]) for e in summary["table"]} == {
        (r, a) for r in (1, 2) for a in ("control", "mined")
    }
    assert all(c["beyond_spread"] in (True, False) for c in summary["comparisons"])
    assert (run / "summary.md").read_text().startswith("# flickermine run")
    assert (run / "summary.png").stat().st_size > 1000
    # Round 1 detects once for both seeds (the same starting model); round 2 once per seed.
    assert len(list((run / "stages").glob("detect-*"))) == 3
    # Unchanged: every stage is skipped.
    assert main(["run", str(cfg)]) == 0
    assert stage_lines(capsys.readouterr().err, "running") == []
    # An evaluation option: only the evaluations run again.
    assert main(["run", str(config(scene, tmp_path, **{"evaluate.score_threshold": 0.6}))]) == 0
    assert stage_lines(capsys.readouterr().err, "running") == ["evaluate"]
    # A mining option: the mined arm's mining and everything after it; the control arm's
    # training and evaluation stay as they were (two rounds x two seeds of the mined arm).
    assert main(["run", str(config(scene, tmp_path, **{"mine.window": 3}))]) == 0
    err = capsys.readouterr().err
    assert stage_lines(err, "running") == sorted(["detect", "mine", "merge", "train", "evaluate"])
    assert sum(1 for line in err.splitlines() if line.startswith("train") and
               line.endswith("running")) == 4  # fmt: skip
    # --from detect: detection and everything after it, not preparation or the start model.
    assert main(["run", str(cfg), "--from", "detect"]) == 0
    ran = stage_lines(capsys.readouterr().err, "running")
    assert ran == sorted(["detect", "mine", "merge", "train", "evaluate"])


def test_a_killed_run_continues_where_it_stopped(scene, tmp_path, capsys):
    cfg = config(
        scene,
        tmp_path,
        rounds=1,
        seeds=[0],
        **{"finetune.iterations": 40, "finetune.checkpoint_every": 5},
    )
    proc = subprocess.Popen([sys.executable, "-m", "flickermine.cli.main", "run", str(cfg)],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith("train") and line.rstrip().endswith("running") and "start" not in line:
            break
        assert time.monotonic() < deadline
    run = tmp_path / "run"
    while not list((run / "stages").glob("train-*/last.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    assert main(["run", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "prepare" in err and "done before, skipped" in err
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["rows"]) == 2
    logs = [json.loads((p / "stage.json").read_text()) for p in (run / "stages").glob("train-*")]
    assert all(log["stage"] == "train" for log in logs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"finetune.lr_schedule": "abc"}, "finetune.lr_schedule: expected LR:UNTIL pairs"),
        ({"finetune.warmup": 3}, "finetune.warmup: unknown key"),
        ({"mine.preset": "fast"}, "mine.preset: unknown preset 'fast'"),
        ({"mine.window": 0}, "mine.window: expected an integer >= 1"),
        ({"seeds": "0,1"}, "seeds: expected a list of integers"),
        ({"arms": [{"name": "a b"}]}, "arms[0].name: expected a name"),
        ({"colour": 1}, "colour: unknown key"),
    ],
)
def test_config_errors_name_the_key(scene, tmp_path, change, message):
    with pytest.raises(ConfigError) as err:
        load_run_config(config(scene, tmp_path, **change))
    assert message in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "config.yaml"))


def test_overlapping_parts_are_refused(scene, tmp_path, capsys):
    cfg = config(scene, tmp_path, data={
        "labelled": {"video": str(scene / "walk.mp4"), "gt": str(scene / "gt.txt"),
                     "frames": "0:40"},
        "unlabelled": {"video": str(scene / "walk.mp4"), "frames": "30:55"},
        "test": {"video": str(scene / "walk.mp4"), "gt": str(scene / "gt.txt"),
                 "frames": "65:90:5"},
    })  # fmt: skip
    assert main(["run", str(cfg), "-q"]) == 2
    assert "data.labelled (frames 0:40) and data.unlabelled (frames 30:55) overlap" in (
        capsys.readouterr().err
    )


def test_unlabelled_videos_from_a_url_list(scene, tmp_path, capsys):
    pytest.importorskip("yt_dlp")
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(scene))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    urls = tmp_path / "urls.txt"
    urls.write_text(f"http://127.0.0.1:{httpd.server_address[1]}/walk.mp4\n")
    data = {
        "labelled": {"video": str(scene / "walk.mp4"), "gt": str(scene / "gt.txt"),
                     "frames": "0:20:2"},
        "unlabelled": {"urls": str(urls)},
        "test": {"video": str(scene / "walk.mp4"), "gt": str(scene / "gt.txt"),
                 "frames": "65:90:5"},
    }  # fmt: skip
    try:
        assert main(["run", str(config(scene, tmp_path, data=data, rounds=1, seeds=[0])),
                     "-q"]) == 0  # fmt: skip
    finally:
        httpd.shutdown()
    fetched = list((tmp_path / "run" / "stages").glob("prepare-*/unlabelled/walk.mp4"))
    assert len(fetched) == 1 and fetched[0].read_bytes() == (scene / "walk.mp4").read_bytes()
    assert len(list((tmp_path / "run" / "stages").glob("detect-*"))) == 1
