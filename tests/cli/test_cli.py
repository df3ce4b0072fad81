"""In-process CLI tests (``main([...])``) plus one real subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from flickermine.cli.main import main
from flickermine.io import load_detections, save_detections, write_legacy

from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

N = 20


@pytest.fixture
def scene(tmp_path):
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
    video = write_video(tmp_path / "walk.mp4", render_frames(N, sprites=[a]))
    rows = [*sprite_rows(a, range(N)), (9, 180.0, 60.0, 228.0, 124.0, 0.9)]
    dets = detections(rows, N)
    write_legacy(dets, tmp_path / "walk.txt")
    return video, tmp_path / "walk.txt"


def test_mine_prints_a_summary(scene, tmp_path, capsys):
    video, txt = scene
    rc = main(["mine", str(video), "--detections", str(txt), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "hard negatives              1" in out and "frames written              1" in out


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so progress bars are drawn on it."""

    def isatty(self) -> bool:
        return True


def test_quiet_prints_only_errors_on_every_subcommand(scene, tmp_path, capsys, monkeypatch):
    video, txt = scene
    loud = _Terminal()
    monkeypatch.setattr(sys, "stderr", loud)
    assert main(["mine", str(video), "--detections", str(txt), "--out", str(tmp_path / "a")]) == 0
    assert "mining 1 video(s)" in loud.getvalue()  # a bar is drawn on a terminal
    assert "hard negatives" in capsys.readouterr().out
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    args = ["--detections", str(txt), "--out", str(tmp_path / "b"), "-q"]
    assert main(["mine", str(video), *args]) == 0
    assert main(["convert", str(txt), str(tmp_path / "walk.parquet"), "-q"]) == 0
    assert main(["detect", str(video), "--out", str(tmp_path / "dets"), "--quiet"]) == 0
    assert capsys.readouterr().out == "" and quiet.getvalue() == ""
    assert (tmp_path / "b" / "walk.json").is_file() and (tmp_path / "walk.parquet").is_file()
    assert (tmp_path / "dets" / "walk.parquet").is_file()
    # Errors still reach stderr, and stdout is back to normal after the command.
    assert main(["convert", str(txt), str(tmp_path / "walk.parquet"), "-q"]) == 2
    assert "Error: " in quiet.getvalue() and "walk.parquet" in quiet.getvalue()
    print("after")
    assert capsys.readouterr().out == "after\n"
    # Every subcommand takes it (but `dataset stats`, whose printout is its result).
    commands = [["fetch"], ["detect"], ["mine"], ["convert"], ["dataset", "merge"],
                ["dataset", "export"], ["dataset", "subset"], ["train"], ["evaluate"],
                ["compare"], ["demo"]]  # fmt: skip
    for command in commands:
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "-q, --quiet" in capsys.readouterr().out, command


@pytest.mark.parametrize("decoder", ["thread", "process"])
def test_mine_decoder_choice_gives_the_same_result(scene, tmp_path, decoder):
    video, txt = scene
    out = tmp_path / decoder
    argv = ["mine", str(video), "--detections", str(txt), "--out", str(out), "--quiet"]
    assert main([*argv, "--decoder", decoder]) == 0
    assert (out / "walk.txt").read_text().startswith("walk/frame10.jpg\n2\n")


def test_unknown_decoder_is_refused_by_the_parser(scene, tmp_path, capsys):
    video, txt = scene
    with pytest.raises(SystemExit):
        main(["mine", str(video), "--detections", str(txt), "--decoder", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


def test_seed_flag_names_are_accepted(scene, tmp_path):
    video, txt = scene
    argv = [
        "mine", "--videoPath", str(video), "--detectionsFilePath", str(txt),
        "--validScore", "0.7", "--alpha", "3", "--iouThr", "0.3", "--beta", "50",
        "--validSimScore", "0.6", "--out", str(tmp_path / "o"), "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    params = json.loads((tmp_path / "o" / "walk.json").read_text())["params"]
    assert params["score_threshold"] == 0.7 and params["window"] == 3
    assert params["iou_threshold"] == 0.3 and params["search_margin"] == 50
    assert params["similarity_threshold"] == 0.6


def test_existing_output_folder_needs_overwrite(scene, tmp_path, capsys):
    video, txt = scene
    argv = ["mine", str(video), "--detections", str(txt), "--out", str(tmp_path / "o"), "--quiet"]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert main([*argv, "--resume"]) == 0


def test_bad_parameter_is_a_clear_error(scene, tmp_path, capsys):
    video, txt = scene
    argv = ["mine", str(video), "--detections", str(txt), "--out", str(tmp_path / "o")]
    assert main([*argv, "--iou-threshold", "1.5"]) == 2
    assert "iou_threshold: expected a value in [0, 1]" in capsys.readouterr().err
    assert main([*argv, "--workers", "0"]) == 2
    assert "workers: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_garbled_detections_error_names_file_and_line(scene, tmp_path, capsys):
    video, txt = scene
    txt.write_text(txt.read_text().replace("FRAME NUMBER: 3\n1\n", "FRAME NUMBER: 3\none\n"))
    rc = main(["mine", str(video), "--detections", str(txt), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert rc == 1 and "walk.txt:8: expected the number of boxes of frame 3" in captured.err
    # Nothing was mined: one line says so, with no table of zeros and no folder to look in.
    assert (
        captured.out.strip()
        == "flickermine mine: 0 video(s) mined, 0 skipped (done before), 1 failed"
    )
    assert not (tmp_path / "o").exists()


def test_convert_legacy_to_native_and_back(scene, tmp_path):
    video, txt = scene
    pq = tmp_path / "walk.parquet"
    assert main(["convert", str(txt), str(pq), "--video", str(video), "--category", "thing"]) == 0
    native = load_detections(pq)
    assert native.meta["category"] == "thing" and native.meta["width"] == 320
    assert main(["convert", str(pq), str(tmp_path / "back.txt")]) == 0
    assert (tmp_path / "back.txt").read_text() == txt.read_text()
    assert main(["convert", str(pq), str(tmp_path / "back.txt")]) == 2  # no silent overwrite


def test_convert_checks_the_frame_count_against_the_video(scene, tmp_path, capsys):
    video, txt = scene
    lines = txt.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.startswith("FRAME NUMBER: 6"))
    short = tmp_path / "short.txt"
    short.write_text("".join(lines[:cut]))  # an interrupted run: frames 1-5 only
    argv = ["convert", str(short), str(tmp_path / "s.parquet"), "--video", str(video)]
    assert main(argv) == 2
    assert "short.txt covers only 5 of the" in capsys.readouterr().err
    assert not (tmp_path / "s.parquet").exists()
    assert main([*argv, "--allow-partial"]) == 0
    assert load_detections(tmp_path / "s.parquet").num_frames == 5


def test_convert_refuses_detections_made_on_frames_of_another_size(scene, tmp_path, capsys):
    video, txt = scene
    other = load_detections(txt)
    other.meta.update(width=640, height=480)
    save_detections(other, tmp_path / "other.parquet")
    argv = ["convert", str(tmp_path / "other.parquet"), str(tmp_path / "o.txt")]
    assert main([*argv, "--video", str(video)]) == 2
    assert "made on 640x480 frames but the frames of" in capsys.readouterr().err
    assert not (tmp_path / "o.txt").exists()


def test_subprocess_smoke(scene, tmp_path):
    video, txt = scene
    save_detections(load_detections(txt), tmp_path / "walk.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "flickermine.cli.main", "mine", str(video), "--detections",
         str(tmp_path / "walk.parquet"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "hard negatives              1" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "flickermine.cli.main", "mine", str(tmp_path / "nope.mp4"),
         "--detections", str(txt)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ") and "nope.mp4" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_folder_with_a_broken_video_mines_the_rest(scene, tmp_path, capsys):
    import shutil

    video, txt = scene
    vids, dets = tmp_path / "vids", tmp_path / "dets"
    vids.mkdir()
    dets.mkdir()
    shutil.copy(video, vids / "good.mp4")
    (vids / "bad.mp4").write_bytes(b"not a video" * 100)
    shutil.copy(txt, dets / "good.txt")
    shutil.copy(txt, dets / "bad.txt")
    rc = main(["mine", str(vids), "--detections", str(dets), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert rc == 1 and "1 video(s) mined" in captured.out
    assert "Error: " in captured.err and "bad.mp4" in captured.err
    assert (tmp_path / "o" / "good.json").is_file()


def test_sigterm_stops_mine_cleanly_and_resume_finishes(scene, tmp_path):
    import shutil
    import signal
    import time

    from tests_helpers import finished_videos

    video, txt = scene
    vids, dets, out = tmp_path / "videos", tmp_path / "dets", tmp_path / "out"
    vids.mkdir()
    dets.mkdir()
    for k in range(20):
        shutil.copy(video, vids / f"v{k:02d}.mp4")
        shutil.copy(txt, dets / f"v{k:02d}.txt")
    argv = [sys.executable, "-m", "flickermine.cli.main", "mine", str(vids), "--detections",
            str(dets), "--out", str(out), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("*.json")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)  # what a scheduler does to stop a job
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Terminated." in err and "--resume" in err
    assert 1 <= len(finished_videos(out)) < 20  # and no outputs of unfinished videos
    again = subprocess.run([*argv, "--resume"], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("*.json"))) == 20


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # that is the point
def test_a_sigterm_lost_in_a_finaliser_still_stops_the_job_at_its_next_step():
    import signal

    from flickermine.cli._common import Terminated, on_sigterm, progress_bar, sigterm_seen

    class Finalised:
        def __del__(self):  # the signal handler runs while an object is being finalised
            on_sigterm(signal.SIGTERM, None)

    try:
        Finalised()  # Python prints "Exception ignored in ..." and goes on: Terminated is lost
        with progress_bar(10, "work") as bar:
            with pytest.raises(Terminated):
                bar.update(1)  # the next step of the work stops it after all
            bar.update(1)  # once
    finally:
        sigterm_seen()


def test_shards_split_the_videos_between_jobs_writing_one_folder(scene, tmp_path, capsys):
    import shutil

    video, txt = scene
    vids, dets, out = tmp_path / "videos", tmp_path / "dets", tmp_path / "out"
    vids.mkdir()
    dets.mkdir()
    names = [f"v{k}" for k in range(5)]
    for name in names:
        shutil.copy(video, vids / f"{name}.mp4")
        shutil.copy(txt, dets / f"{name}.txt")
    argv = ["mine", str(vids), "--detections", str(dets), "--out", str(out), "--quiet"]
    assert main([*argv, "--shard", "0/2"]) == 0
    first = sorted(p.stem for p in out.glob("*.json"))
    assert first == ["v0", "v2", "v4"]
    assert main([*argv, "--shard", "1/2"]) == 0  # the other job, same folder, no flag needed
    assert sorted(p.stem for p in out.glob("*.json")) == names
    capsys.readouterr()
    assert main([*argv, "--shard", "1/2"]) == 2  # its own outputs exist: refused as always
    assert "v1.txt: output of an earlier run exists" in capsys.readouterr().err
    assert main([*argv, "--shard", "1/2", "--resume"]) == 0
    for bad in ("2/2", "1/0", "half", "-1/3"):
        assert main([*argv, f"--shard={bad}"]) == 2
        assert "--shard: expected" in capsys.readouterr().err
    detect = ["detect", str(vids), "--out", str(tmp_path / "d"), "--backend",
              "detect.plugin_examples:bright_squares"]  # fmt: skip
    assert main([*detect, "--shard", "3/4"]) == 0
    assert [p.name for p in (tmp_path / "d").glob("*.parquet")] == ["v3.parquet"]
