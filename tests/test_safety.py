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


# ---------------------------------------------------------------- 6. merge: frame identity
def test_merge_keeps_frames_of_two_videos_recorded_under_one_name(tmp_path):
    import json

    from flickermine.mine import mine_video

    outs = []
    for k, seed in enumerate((7, 11)):
        folder = tmp_path / f"run{k}"
        folder.mkdir()
        a = Sprite(texture(seed, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
        video = write_video(
            folder / "clip.mp4", render_frames(N, sprites=[a], background_seed=seed)
        )
        dets = detections([*sprite_rows(a, range(N)), (7, 180.0, 60.0, 228.0, 124.0, 0.9)], N)
        # Both videos recorded as "clip.mp4" (as typed, relative to where mine was run).
        mine_video(video, dets, folder / "out")
        summary = folder / "out" / "clip.json"
        data = json.loads(summary.read_text())
        data["video"] = "clip.mp4"
        summary.write_text(json.dumps(data))
        outs.append(folder / "out")
    coco = tmp_path / "c.json"
    coco.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "p"}]}')
    argv = ["dataset", "merge", str(coco), str(outs[0]), str(outs[1]), "--images",
            str(tmp_path / "img"), "--category", "p",
            "--out", str(tmp_path / "m.json")]  # fmt: skip
    assert main([*argv, "-q"]) == 0
    images = json.loads((tmp_path / "m.json").read_text())["images"]
    assert len(images) == 2 and len({i["file_name"] for i in images}) == 2
    pictures = {(tmp_path / "img" / i["file_name"]).read_bytes() for i in images}
    assert len(pictures) == 2  # each record shows its own video's frame
    # Merging the same frames again adds nothing.
    assert main(["dataset", "merge", str(tmp_path / "m.json"), str(outs[0]), "--images",
                 str(tmp_path / "img"), "--category", "p", "--in-place", "-q"]) == 0  # fmt: skip
    assert len(json.loads((tmp_path / "m.json").read_text())["images"]) == 2


# ---------------------------------------------------------------- 8., 19. legacy frame numbers
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FRAME NUMBER: 2\n0\nFRAME NUMBER: 1\n0\n", ":3: frame number 1 after frame 2"),
        ("FRAME NUMBER: 1\n0\nFRAME NUMBER: 1\n0\n", ":3: frame number 1 after frame 1"),
        ("FRAME NUMBER: 0\n0\n", ":1: frame number 0: frames are numbered from 1"),
        ("FRAME NUMBER: 1\n3\n1 2 3 4 0.9\n1 2 3 4 0.9\nFRAME NUMBER: 2\n1\n1 2 3 4 0.9\n",
         ":2: frame 1 announces 3 boxes, but line 5"),
    ],
)  # fmt: skip
def test_legacy_frame_numbers_are_checked(tmp_path, text, message):
    from flickermine.errors import DetectionFileError
    from flickermine.io import read_legacy

    path = tmp_path / "d.txt"
    path.write_text(text)
    with pytest.raises(DetectionFileError, match=message):
        read_legacy(path)


def test_legacy_blocks_go_to_the_frame_their_header_names(tmp_path):
    from flickermine.io import read_legacy

    path = tmp_path / "d.txt"
    path.write_text("FRAME NUMBER: 1\n1\n1 2 3 4 0.9\nFRAME NUMBER: 123\n1\n5 6 7 8 0.8\n")
    dets = read_legacy(path)
    assert dets.num_frames == 123 and dets.frame.tolist() == [0, 122]


# ---------------------------------------------------------------- 11. big integers
def test_merge_keeps_integers_beyond_64_bits(tmp_path):
    import json

    from flickermine.dataset import load_coco, save_coco

    path = tmp_path / "c.json"
    path.write_text(
        '{"info": {"big": 1000000000000000000000000000000}, "images": [{"id": '
        '1000000000000000000000000000000, "file_name": "a.jpg"}], "annotations": [], '
        '"categories": [{"id": 1, "name": "p"}]}'
    )
    coco = load_coco(path)
    assert coco["images"][0]["id"] == 10**30
    save_coco(coco, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text())["info"]["big"] == 10**30
    assert "1000000000000000000000000000000" in (tmp_path / "out.json").read_text()


# ---------------------------------------------------------------- 12., 14. compare, demo
def _two_images_with_one_name(tmp_path: Path) -> tuple[Path, Path, Path]:
    import json

    import cv2

    images = tmp_path / "images"
    for sub in ("a", "b"):
        (images / sub).mkdir(parents=True)
        cv2.imwrite(str(images / sub / "x.jpg"), texture(3, 64, 64))
    gt = {"images": [{"id": 1, "file_name": "a/x.jpg", "width": 64, "height": 64},
                     {"id": 2, "file_name": "b/x.jpg", "width": 64, "height": 64}],
          "annotations": [], "categories": [{"id": 1, "name": "p"}]}  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    dets = [{"image_id": i, "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.9} for i in (1, 2)]
    (tmp_path / "a.json").write_text(json.dumps(dets))
    (tmp_path / "b.json").write_text("[]")
    return tmp_path / "gt.json", tmp_path / "a.json", tmp_path / "b.json"


def test_compare_draws_one_pair_per_image_and_refuses_a_full_folder(tmp_path, capsys):
    import json

    gt, a, b = _two_images_with_one_name(tmp_path)
    out = tmp_path / "cmp"
    argv = ["compare", str(a), str(b), "--gt", str(gt), "--images", str(tmp_path / "images"),
            "--out", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    pairs = json.loads((out / "compare.json").read_text())["pairs"]
    pictures = {p[k] for p in pairs for k in ("before", "after")}
    assert len(pairs) == 2 and len(pictures) == 4
    assert all((out / p).is_file() for p in pictures)
    assert main(argv) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    (out / "pairs" / "old_before.jpg").write_bytes(b"x")  # from an earlier comparison
    (out / "pairs" / "notes.txt").write_text("mine")
    assert main([*argv, "--overwrite", "--max-pairs", "1"]) == 0
    assert sorted(p.name for p in (out / "pairs").iterdir())[-1] == "notes.txt"
    assert len(list((out / "pairs").glob("*.jpg"))) == 2


def test_demo_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert main(["demo", "--out", str(out), "-q"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


# ---------------------------------------------------------------- 13. train --resume log
def test_train_resume_cuts_the_log_back_to_the_checkpoint(tmp_path):
    import csv

    torch = pytest.importorskip("torch")
    from flickermine.train import TrainConfig, train

    from factories import make_shapes_dataset

    torch.set_num_threads(1)
    shapes = make_shapes_dataset(tmp_path / "shapes", 8)
    cfg = TrainConfig(train=str(shapes), images=str(shapes.parent / "images"),
                      out=str(tmp_path / "run"), category="disc", model="fasterrcnn_tiny",
                      weights=None, batch_size=2, lr=0.01, min_size=64, max_size=64,
                      log_every=1, checkpoint_every=4, iterations=8, seed=0)  # fmt: skip
    train(cfg, stop_after=5)  # rows 1..5 logged, last checkpoint at 5 (stop) ...
    log = tmp_path / "run" / "log.csv"
    with log.open() as fh:
        assert [r["iteration"] for r in csv.DictReader(fh)] == ["1", "2", "3", "4", "5"]
    import shutil as sh

    sh.copy(tmp_path / "run" / "last.pt", tmp_path / "at5.pt")
    # ... a run killed after logging 6 but before its next checkpoint:
    with log.open("a") as fh:
        fh.write("6,0.01,1.0,,,,,,,\n")
    train(cfg, resume=True)
    with log.open() as fh:
        assert [r["iteration"] for r in csv.DictReader(fh)] == [str(i) for i in range(1, 9)]


# ---------------------------------------------------------------- 16. in place through a link
def test_merge_in_place_on_a_symlink_writes_the_target(tmp_path):
    import json

    from flickermine.mine import mine_video

    video, dets = _scene(tmp_path)
    mine_video(video, dets, tmp_path / "mined")
    real = tmp_path / "real.json"
    real.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "p"}]}')
    link = tmp_path / "link.json"
    link.symlink_to(real)
    argv = ["dataset", "merge", str(link), str(tmp_path / "mined"), "--images",
            str(tmp_path / "img"), "--category", "p", "--in-place", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert link.is_symlink()
    assert len(json.loads(real.read_text())["images"]) == 1


# ---------------------------------------------------------------- 17. export of seed results
@pytest.mark.parametrize("name", ["/etc/frame1.jpg", "../outside/frame1.jpg", "v/photo.jpg"])
def test_export_refuses_frame_paths_outside_the_result(tmp_path, capsys, name):
    import cv2

    (tmp_path / "outside").mkdir()
    cv2.imwrite(str(tmp_path / "outside" / "frame1.jpg"), texture(1, 32, 32))
    res = tmp_path / "res"
    (res / "v").mkdir(parents=True)
    cv2.imwrite(str(res / "v" / "photo.jpg"), texture(1, 32, 32))
    (res / "v.txt").write_text(f"{name}\n1\n1 1 20 20 1\n")
    assert main(["dataset", "export", str(res / "v.txt"), "--out", str(tmp_path / "e"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "v.txt:1:" in err
    assert not (tmp_path / "e" / "images").exists() or not any(
        (tmp_path / "e" / "images").iterdir()
    )


# ---------------------------------------------------------------- 18. errors from user data/code
def test_evaluate_with_text_category_ids_is_an_error_line(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], '
                  '"categories": [{"id": "dog", "name": "dog"}]}')  # fmt: skip
    (tmp_path / "d.json").write_text("[]")
    assert main(["evaluate", "--detections", str(tmp_path / "d.json"), "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "category id 'dog' is not an integer" in err


def test_checkpoint_without_model_name_is_an_error_line(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    ckpt = tmp_path / "c.pt"
    torch.save({"format": "flickermine-checkpoint", "num_classes": 2, "model": {},
                "categories": [{"id": 1, "name": "p"}]}, ckpt)  # fmt: skip
    video, _ = _scene(tmp_path)
    argv = ["detect", str(video), "--out", str(tmp_path / "d"), "--backend", "torchvision",
            "--weights", str(ckpt)]  # fmt: skip
    assert main(argv) == 2
    assert "c.pt: damaged checkpoint: no 'model_name'" in capsys.readouterr().err
    torch.save({"format": "flickermine-checkpoint", "num_classes": 1, "model": {},
                "model_name": "fasterrcnn_tiny", "categories": []}, ckpt)  # fmt: skip
    assert main([*argv, "--category", "p"]) == 2
    assert "'categories' must list {id, name} dicts" in capsys.readouterr().err


def test_a_plugin_that_raises_is_named(tmp_path, capsys, monkeypatch):
    video, _ = _scene(tmp_path)
    (tmp_path / "badplug.py").write_text("def run(frames):\n    raise TypeError('oops')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["detect", str(video), "--out", str(tmp_path / "d"), "--backend", "badplug:run", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "plugin 'badplug:run' raised TypeError: oops" in err and "Traceback" not in err


# ---------------------------------------------------------------- 9. detections of another video
def test_detections_made_for_another_video_warn_or_fail_with_strict(tmp_path, capsys, caplog):
    from flickermine.io import load_detections

    video, dets = _scene(tmp_path)
    other = load_detections(dets)
    other.meta["video"] = "/data/another.mp4"
    save_detections(other, tmp_path / "other.parquet")
    argv = ["mine", str(video), "--detections", str(tmp_path / "other.parquet"), "-q"]
    assert main([*argv, "--out", str(tmp_path / "o1")]) == 0
    assert "made for another.mp4, not for walk.mp4" in caplog.text
    assert main([*argv, "--out", str(tmp_path / "o2"), "--strict"]) == 2
    assert "made for another.mp4, not for walk.mp4 (--strict)" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


# ---------------------------------------------------------------- 19., 20. messages, no noise
def test_metadata_frame_count_is_named_as_such(tmp_path):
    import json

    import pyarrow.parquet as pq

    from flickermine.errors import DetectionFileError
    from flickermine.io import read_native

    _, dets = _scene(tmp_path)
    table = pq.read_table(dets)
    cases = (
        (5, "frame count given \\(num_frames\\) is 5 in its metadata"),
        (True, "num_frames must be a non-negative integer, got True"),
    )
    for value, message in cases:
        meta = json.loads(table.schema.metadata[b"flickermine"])
        meta["num_frames"] = value
        bad = table.replace_schema_metadata({b"flickermine": json.dumps(meta).encode()})
        pq.write_table(bad, tmp_path / "bad.parquet")
        with pytest.raises(DetectionFileError, match=message):
            read_native(tmp_path / "bad.parquet")


def test_a_plugin_returning_huge_or_nan_numbers_is_refused_without_warnings(tmp_path, capfd):
    video, _ = _scene(tmp_path)
    (tmp_path / "hugeplug.py").write_text(
        "def run(frames):\n    return [([[0, 0, 1e300, 10]], [float('nan')]) for _ in frames]\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        argv = ["detect", str(video), "--out", str(tmp_path / "d"), "--backend", "hugeplug:run"]
        assert main([*argv, "-q"]) == 2
    finally:
        sys.path.remove(str(tmp_path))
    err = capfd.readouterr().err
    assert "NaN, infinite or beyond float32" in err and "RuntimeWarning" not in err


def test_nan_labels_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flickermine.errors import DetectionFileError
    from flickermine.io import read_native

    _, dets = _scene(tmp_path)
    table = pq.read_table(dets)
    labels = pa.array([float("nan")] * table.num_rows)
    bad = table.set_column(table.column_names.index("label"), "label", labels)
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(DetectionFileError, match="label holds NaN"):
        read_native(tmp_path / "bad.parquet")


def test_no_opencv_warning_before_the_error_line(tmp_path):
    import subprocess
    import sys

    gt, a, b = _two_images_with_one_name(tmp_path)
    (tmp_path / "images" / "a" / "x.jpg").unlink()
    cmd = [sys.executable, "-m", "flickermine.cli.main", "compare", str(a), str(b), "--gt",
           str(gt), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "c")]  # fmt: skip
    err = subprocess.run(cmd, capture_output=True, text=True, check=False).stderr
    assert err.startswith("Error: ") and "WARN" not in err, err


def test_a_failed_mine_leaves_no_empty_picture_folders(tmp_path):
    from flickermine.io import load_detections

    video, dets = _scene(tmp_path)
    longer = load_detections(dets).with_num_frames(N + 3)  # more frames than the video has
    save_detections(longer, tmp_path / "long.parquet")
    out = tmp_path / "out"
    argv = ["mine", str(video), "--detections", str(tmp_path / "long.parquet"), "--out", str(out)]
    assert main([*argv, "-q", "--allow-partial"]) == 1
    assert not (out / "frames").exists() and not (out / "visualizations").exists()


def test_a_truncated_download_is_recorded_with_a_reason(tmp_path):
    pytest.importorskip("yt_dlp")

    class Truncated(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(sample_video().read_bytes()[:5000])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncated)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        lst = tmp_path / "list.txt"
        lst.write_text(f"http://127.0.0.1:{httpd.server_address[1]}/clip.mp4\n")
        out = tmp_path / "v"
        assert main(["fetch", str(lst), "--out", str(out), "--retries", "1", "-q"]) == 1
    finally:
        httpd.shutdown()
    row = _manifest(out / "manifest.csv")[0]
    assert row["status"] == "failed"
    assert "Downloaded 5000 bytes, expected 100000 bytes" in row["error"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv"]


@pytest.mark.parametrize("name", ["/etc/hosts", "../x.jpg", "a/../../x.jpg"])
def test_coco_file_names_must_stay_inside_the_image_folder(tmp_path, name):
    from flickermine.dataset.coco import CocoError, image_file

    with pytest.raises(CocoError, match="gt.json: image 3: file_name .* is not a path inside"):
        image_file(tmp_path, {"id": 3, "file_name": name}, "gt.json")
    assert image_file(tmp_path, {"id": 3, "file_name": "val/a.jpg"}, "gt.json").name == "a.jpg"


def test_merge_into_a_file_without_categories_says_so(tmp_path, capsys):
    from flickermine.mine import mine_video

    video, dets = _scene(tmp_path)
    mine_video(video, dets, tmp_path / "mined")
    empty = tmp_path / "empty.json"
    empty.write_text('{"images": [], "annotations": [], "categories": []}')
    argv = [
        "dataset",
        "merge",
        str(empty),
        str(tmp_path / "mined"),
        "--images",
        str(tmp_path / "img"),
        "--category",
        "person",
        "--out",
        str(tmp_path / "o.json"),
    ]
    assert main(argv) == 2
    assert 'declares no categories; add {"id": 1, "name": "person"}' in capsys.readouterr().err
