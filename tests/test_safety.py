"""What the tool promises about the user's files: it never deletes what it did not write, never
runs code from a data file, and refuses outputs that would land on inputs. One test per way
these promises were once broken."""

from __future__ import annotations

import csv
import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from flickermine.cli.main import main
from flickermine.demo import sample_video
from flickermine.errors import ConfigError
from flickermine.io import save_detections, write_legacy
from flickermine.paths import check_disjoint, inside, remove_own_files, safe_component

from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

N = 14


def _scene(folder: Path, name: str = "walk.mp4") -> tuple[Path, Path]:
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
    video = write_video(folder / name, render_frames(N, sprites=[a]))
    dets = detections([*sprite_rows(a, range(N)), (7, 180.0, 60.0, 228.0, 124.0, 0.9)], N)
    det_path = folder / "dets.parquet"
    save_detections(dets, det_path)
    return video, det_path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- 1. names that are paths
@pytest.mark.parametrize("name", ["", ".", "..", "...", "a/b", "a\\b", "x\x00y", "tab\there"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ConfigError, match="cannot be used as a file name"):
        safe_component(name, "name")


@pytest.mark.parametrize("relative", ["/etc/passwd", "../x.jpg", "a/../../x", "C:\\x", "a/..", ""])
def test_paths_that_leave_their_folder_are_refused(tmp_path, relative):
    with pytest.raises(ConfigError, match="is not a path inside"):
        inside(tmp_path, relative, "file_name")
    assert inside(tmp_path, "sub/a.jpg", "file_name") == tmp_path / "sub" / "a.jpg"


@pytest.mark.parametrize("name", ["...mp4", "..mp4"])
def test_mine_resume_with_a_dot_named_video_deletes_nothing(tmp_path, capsys, name):
    video, dets = _scene(tmp_path, "walk.mp4")
    dotted = tmp_path / "vid" / name
    dotted.parent.mkdir()
    shutil.copy(video, dotted)
    out = tmp_path / "out"
    assert main(["mine", str(video), "--detections", str(dets), "--out", str(out), "-q"]) == 0
    (out / "mine.notes").write_text("a user's file")
    before = _snapshot(out)
    argv = ["mine", str(dotted), "--detections", str(dets), "--out", str(out), "--resume"]
    assert main(argv) == 2
    assert "cannot be used as a file name" in capsys.readouterr().err
    assert _snapshot(out) == before


def test_mine_with_shard_and_a_dot_named_video_deletes_nothing(tmp_path, capsys):
    video, dets = _scene(tmp_path)
    vids, det_dir = tmp_path / "vids", tmp_path / "dets"
    vids.mkdir()
    det_dir.mkdir()
    shutil.copy(video, vids / "..mp4")
    shutil.copy(dets, det_dir / "..parquet")
    out = tmp_path / "out"
    out.mkdir()
    (out / "user.txt").write_text("keep me")
    argv = ["mine", str(vids), "--detections", str(det_dir), "--out", str(out), "--shard", "0/1"]
    assert main(argv) == 2
    assert "cannot be used as a file name" in capsys.readouterr().err
    assert (out / "user.txt").read_text() == "keep me"


def test_mine_into_its_own_input_folder_is_refused(tmp_path, capsys):
    video, dets = _scene(tmp_path)
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(video, vids / "walk.mp4")
    shutil.copy(dets, vids / "walk.parquet")
    (vids / "README").write_text("my videos")
    before = _snapshot(vids)
    argv = ["mine", str(vids), "--detections", str(vids), "--out", str(vids), "--overwrite"]
    assert main(argv) == 2
    assert "is (or is inside) the input folder" in capsys.readouterr().err
    assert _snapshot(vids) == before


def test_rerun_keeps_a_users_file_in_the_picture_folders(tmp_path):
    video, dets = _scene(tmp_path)
    out = tmp_path / "out"
    argv = ["mine", str(video), "--detections", str(dets), "--out", str(out), "-q"]
    assert main(argv) == 0
    note = out / "frames" / "walk" / "notes.txt"
    note.write_text("reviewed")
    assert main([*argv, "--overwrite"]) == 0
    assert note.read_text() == "reviewed"
    names = sorted(p.name for p in (out / "frames" / "walk").iterdir())
    assert names == ["frame8.jpg", "notes.txt"]


def test_remove_own_files_leaves_others_and_subfolders(tmp_path):
    import re

    (tmp_path / "frame1.jpg").write_bytes(b"x")
    (tmp_path / "photo.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "frame2.jpg").write_bytes(b"x")
    remove_own_files(tmp_path, re.compile(r"frame\d+\.jpg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "sub"]
    assert (tmp_path / "sub" / "frame2.jpg").exists()


# ---------------------------------------------------------------- 2. an output on its input
def test_mine_resume_never_replaces_its_legacy_detections(tmp_path, capsys):
    video, dets = _scene(tmp_path)
    from flickermine.io import load_detections

    out = tmp_path / "out"
    out.mkdir()
    legacy = out / "walk.txt"
    write_legacy(load_detections(dets), legacy)
    before = legacy.read_bytes()
    argv = ["mine", str(video), "--detections", str(legacy), "--out", str(out), "--resume"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "would replace the input" in err and "walk.txt" in err
    assert legacy.read_bytes() == before


def test_check_disjoint_names_output_and_input(tmp_path):
    out, src = tmp_path / "out", tmp_path / "in"
    with pytest.raises(ConfigError, match=r"out/a\.txt: this output would replace the input"):
        check_disjoint(out, (), [out / "a.txt"], [out / "a.txt"])
    check_disjoint(out, [src], [out / "a.txt"], [src / "a.txt"])  # disjoint: accepted
    with pytest.raises(ConfigError, match="is inside"):
        check_disjoint(src / "sub", [src], [], [])


# ---------------------------------------------------------------- 3., 4., 15. fetch
@pytest.fixture
def server(tmp_path):
    pytest.importorskip("yt_dlp")
    root = tmp_path / "www"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        shutil.copy(sample_video(), root / name / "video.mp4")
    shutil.copy(sample_video(), root / "A.mp4")
    shutil.copy(sample_video(), root / "B.mp4")
    shutil.copy(sample_video(), root / "C.mp4")
    (root / "short.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_fetch_seed_layout_rerun_with_a_changed_list_keeps_numbers(server, tmp_path):
    out, lst = tmp_path / "videos", tmp_path / "list.txt"
    lst.write_text(f"{server}/A.mp4\n{server}/B.mp4\n")
    assert main(["fetch", str(lst), "--out", str(out), "--seed-layout", "-q"]) == 0
    a_bytes = (out / "video1" / "video1.mp4").read_bytes()
    lst.write_text(f"{server}/C.mp4\n{server}/A.mp4\n{server}/B.mp4\n")
    assert main(["fetch", str(lst), "--out", str(out), "--seed-layout", "-q"]) == 0
    by_url = {r["url"].rsplit("/", 1)[1]: r["file"] for r in _manifest(out / "manifest.csv")}
    assert by_url == {"A.mp4": "video1/video1.mp4", "B.mp4": "video2/video2.mp4",
                      "C.mp4": "video3/video3.mp4"}  # fmt: skip
    for file in by_url.values():
        assert (out / file).is_file()
    assert (out / "video1" / "video1.mp4").read_bytes() == a_bytes
    mapping = (out / "mapping.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[0] for line in mapping) == ["video1", "video2", "video3"]


def test_fetch_two_urls_with_one_file_name_get_two_files(server, tmp_path):
    out, lst = tmp_path / "videos", tmp_path / "list.txt"
    lst.write_text(f"{server}/a/video.mp4\n{server}/b/video.mp4\n")
    assert main(["fetch", str(lst), "--out", str(out), "-q"]) == 0
    files = [r["file"] for r in _manifest(out / "manifest.csv")]
    assert len(set(files)) == 2 and all((out / f).is_file() for f in files)
    assert files[0] == "video.mp4"


def test_fetch_leaves_no_file_of_a_failed_video(server, tmp_path):
    out, lst = tmp_path / "videos", tmp_path / "list.txt"
    lst.write_text(f"{server}/short.mp4\n")
    assert main(["fetch", str(lst), "--out", str(out), "--retries", "1", "-q"]) == 1
    row = _manifest(out / "manifest.csv")[0]
    assert row["status"] == "failed" and row["error"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv"]


# ---------------------------------------------------------------- 5. code in a checkpoint
class _Payload:
    def __reduce__(self):
        return (Path.write_text, (Path(_Payload.marker), "ran"))


def test_checkpoint_with_a_pickled_payload_is_refused_and_runs_nothing(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    _Payload.marker = str(marker)  # type: ignore[attr-defined]
    ckpt = tmp_path / "evil.pt"
    torch.save({"format": "flickermine-checkpoint", "x": _Payload()}, ckpt)
    video, _ = _scene(tmp_path)
    gt = tmp_path / "gt.json"
    gt.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}')
    commands = [
        ["detect", str(video), "--out", str(tmp_path / "d"), "--backend", "torchvision",
         "--weights", str(ckpt)],
        ["evaluate", str(ckpt), "--gt", str(gt), "--images", str(tmp_path)],
    ]  # fmt: skip
    for argv in commands:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and "evil.pt: refused" in err, err
        assert not marker.exists()


def test_training_checkpoints_load_with_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    from flickermine.models import build_model, read_checkpoint, save_checkpoint
    from flickermine.train.loop import _rng_state, _set_rng_state

    model = build_model("fasterrcnn_tiny", 2, min_size=64, max_size=96)
    path = tmp_path / "c.pt"
    rng = _rng_state(torch)
    expected = (np.random.random(), torch.rand(1).item())
    save_checkpoint(path, model, "fasterrcnn_tiny", [{"id": 1, "name": "person"}], rng=rng)
    _set_rng_state(torch, read_checkpoint(path)["rng"])
    assert (np.random.random(), torch.rand(1).item()) == expected


# ---------------------------------------------------------------- 7. detect stems
def test_detect_refuses_two_videos_with_one_stem(tmp_path, capsys):
    video, _ = _scene(tmp_path)
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(video, vids / "ten.mp4")
    shutil.copy(video, vids / "ten.avi")
    assert main(["detect", str(vids), "--out", str(tmp_path / "d"), "-q"]) == 2
    assert "same name 'ten'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------- 10. HOG reproducible
def test_hog_boxes_come_in_a_fixed_order():
    from flickermine.detect.hog import HogPeopleDetector
    from flickermine.video import VideoReader

    frames = [f.bgr for f, _ in zip(VideoReader(sample_video()).frames(), range(30), strict=False)]
    det = HogPeopleDetector()
    for xyxy, score in det(frames):
        order = np.lexsort((xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], -score))
        assert (order == np.arange(len(score))).all()
