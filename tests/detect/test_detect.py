"""detect: real models, real decoding; backends agree with the model run directly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import reference
from flickermine.cli.main import main
from flickermine.detect import OnnxDetector, OnnxSpec, detect_to_file
from flickermine.detect.torchvision_backend import TorchvisionDetector
from flickermine.io import load_detections
from flickermine.video import VideoReader

torch = pytest.importorskip("torch")


def assert_same_detections(got_boxes, got_scores, ref_boxes, ref_scores, atol=1e-2):
    """Box for box, in any order (random models give many tied scores)."""
    assert len(got_scores) == len(ref_scores)
    free = list(range(len(got_scores)))
    for box, score in zip(ref_boxes, ref_scores, strict=True):
        match = [
            j for j in free
            if abs(got_scores[j] - score) < 1e-4 and np.abs(got_boxes[j] - box).max() < atol
        ]  # fmt: skip
        assert match, f"no detection matches {box} {score}"
        free.remove(match[0])


def frames_of(video: Path) -> list[np.ndarray]:
    return [f.bgr for f in VideoReader(video)]


def test_hog_on_the_bundled_clip_finds_people(tmp_path):
    import av

    from flickermine.demo import sample_video
    from tests_helpers import first_frames

    clip = first_frames(sample_video(), tmp_path / "clip.mp4", 12)
    assert main(["detect", str(clip), "--out", str(tmp_path / "d"), "--legacy-txt"]) == 0
    dets = load_detections(tmp_path / "d" / "clip.parquet")
    assert dets.num_frames == 12 and len(dets) >= 12
    assert dets.meta["detector"] == "opencv-hog-people (person boxes)"
    assert dets.meta["category"] == "person"
    assert dets.meta["width"] == 768 and dets.meta["fps"] == pytest.approx(10)
    assert (dets.xyxy[:, 2] <= 768).all() and (dets.xyxy[:, 3] <= 576).all()
    assert load_detections(tmp_path / "d" / "clip.txt").num_frames == 12
    assert av  # decoded by PyAV above


def test_a_folder_with_unreadable_videos_still_detects_the_others(small_video, tmp_path, capsys):
    import shutil

    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(small_video, folder / "good.mp4")
    (folder / "junk.mp4").write_bytes(b"not a video" * 100)
    (folder / "cut.mp4").write_bytes(small_video.read_bytes()[:2000])
    assert main(["detect", str(folder), "--out", str(tmp_path / "d")]) == 1
    captured = capsys.readouterr()
    assert "junk.mp4: cannot open video" in captured.err and "cut.mp4" in captured.err
    junk = str(folder / "junk.mp4")
    assert f"Error: {junk}: cannot open video" in captured.err  # the path once, not doubled
    assert (
        load_detections(tmp_path / "d" / "good.parquet").num_frames
        == VideoReader(small_video).num_frames
    )
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["good.parquet"]


def test_checkpoint_through_weights_file_matches_the_model(tiny_checkpoint, small_video, tmp_path):
    argv = ["detect", str(small_video), "--out", str(tmp_path / "d"), "--backend", "torchvision",
            "--weights", str(tiny_checkpoint), "--score-threshold", "0.0", "--nms-iou", "1.0",
            "--batch-size", "4"]  # fmt: skip
    assert main(argv) == 0
    dets = load_detections(tmp_path / "d" / "clip.parquet")
    assert dets.meta["category"] == "thing" and dets.num_frames == 12
    _, ref = reference(tiny_checkpoint, frames_of(small_video))
    assert sum(len(s) for _, s in ref) > 0
    for t, (boxes, scores) in enumerate(ref):
        sl = dets.frame_slice(t)
        assert_same_detections(dets.xyxy[sl], dets.score[sl], boxes, scores)


def test_nms_and_threshold_reduce_the_boxes(tiny_checkpoint, small_video):
    frames = frames_of(small_video)[:2]
    loose = TorchvisionDetector(weights=str(tiny_checkpoint), score_threshold=0.0, nms_iou=1.0)
    strict = TorchvisionDetector(weights=str(tiny_checkpoint), score_threshold=0.0, nms_iou=0.15)
    from torchvision.ops import box_iou

    for (lb, _), (sb, _) in zip(loose(frames), strict(frames), strict=True):
        assert len(sb) <= len(lb)
        if len(sb) > 1:
            iou = box_iou(torch.from_numpy(sb), torch.from_numpy(sb)).numpy()
            assert (iou[~np.eye(len(sb), dtype=bool)] <= 0.15 + 1e-6).all()


def export_onnx(model, path: Path, shape: tuple[int, int]) -> Path:
    x = torch.rand(3, *shape)
    torch.onnx.export(model, ([x],), str(path), opset_version=17, input_names=["images"],
                      output_names=["boxes", "labels", "scores"], dynamo=False,
                      dynamic_axes={"images": {1: "h", 2: "w"}})  # fmt: skip
    return path


@pytest.mark.slow
def test_onnx_export_matches_torch_box_for_box(tiny_checkpoint, small_video, tmp_path):
    frames = frames_of(small_video)
    model, ref = reference(tiny_checkpoint, frames)
    onnx_path = export_onnx(model, tmp_path / "m.onnx", (150, 200))
    det = OnnxDetector(onnx_path, OnnxSpec(), category=1, score_threshold=0.0)
    got = det(frames)
    for (gb, gs), (rb, rs) in zip(got, ref, strict=True):
        assert_same_detections(gb, gs, rb, rs)


class RowsWrapper(torch.nn.Module):
    """A detector with one [N, 6] output of normalised rows, on a fixed 320x240 NCHW input."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        o = self.model([x[0]])[0]
        scale = torch.tensor([320.0, 240.0, 320.0, 240.0])
        return torch.cat(
            [o["boxes"] / scale, o["scores"][:, None], o["labels"][:, None].float()], 1
        )


@pytest.mark.slow
def test_onnx_rows_layout_with_stretch_and_normalised_boxes(tiny_checkpoint, small_video, tmp_path):
    import cv2

    frames = frames_of(small_video)[:4]
    model, _ = reference(tiny_checkpoint, frames[:1])
    wrapper = RowsWrapper(model).eval()
    path = tmp_path / "rows.onnx"
    torch.onnx.export(wrapper, (torch.rand(1, 3, 240, 320),), str(path), opset_version=17,
                      input_names=["x"], output_names=["rows"], dynamo=False)  # fmt: skip
    (tmp_path / "names.txt").write_text("background\nthing\n")
    argv = ["detect", str(small_video), "--out", str(tmp_path / "d"), "--backend", "onnx",
            "--weights", str(path), "--input-size", "320x240", "--output-layout", "rows",
            "--normalized", "--class-names", str(tmp_path / "names.txt"), "--category", "thing",
            "--score-threshold", "0.0"]  # fmt: skip
    assert main(argv) == 0
    dets = load_detections(tmp_path / "d" / "clip.parquet")
    for t, f in enumerate(frames):
        x = cv2.resize(f, (320, 240))[:, :, ::-1].transpose(2, 0, 1).copy()
        with torch.inference_mode():
            o = model([torch.from_numpy(x).float() / 255.0])[0]
        keep = o["labels"] == 1
        expected = o["boxes"][keep].numpy() * np.array([200 / 320, 150 / 240] * 2)
        sl = dets.frame_slice(t)
        assert_same_detections(dets.xyxy[sl], dets.score[sl], expected, o["scores"][keep].numpy(),
                               atol=2e-2)  # fmt: skip


def constant_rows_model(path: Path, rows: np.ndarray, shape: list[int]) -> Path:
    """An ONNX model that returns ``rows`` whatever the input (for the mapping arithmetic)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("rows", TensorProto.FLOAT, list(rows.shape))
    const = helper.make_node(
        "Constant", [], ["c"], value=numpy_helper.from_array(rows.astype(np.float32))
    )
    shape_node = helper.make_node("Shape", ["x"], ["s"])  # uses the input
    cast = helper.make_node("Identity", ["c"], ["rows"])
    graph = helper.make_graph([const, shape_node, cast], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_onnx_letterbox_nhwc_maps_boxes_back(tmp_path):
    rows = np.array([[100.0, 40.0, 200.0, 140.0, 0.9, 3.0], [0, 0, 10, 10, 0.95, 1.0]])
    path = constant_rows_model(tmp_path / "c.onnx", rows, [1, 320, 320, 3])
    spec = OnnxSpec(input_size=(320, 320), resize="letterbox", layout="NHWC", channels="BGR",
                    scale=1.0, output="rows")  # fmt: skip
    det = OnnxDetector(path, spec, category=3, score_threshold=0.5)
    frame = np.zeros((150, 200, 3), np.uint8)  # scaled by 1.6 to 320x240, padded 40 px top/bottom
    ((boxes, scores),) = det([frame])
    np.testing.assert_allclose(boxes, [[100 / 1.6, 0 / 1.6, 200 / 1.6, 100 / 1.6]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9])


def test_plugin_backend_and_its_errors(small_video, tmp_path, capsys):
    argv = ["detect", str(small_video), "--out", str(tmp_path / "d"), "--backend"]
    assert main([*argv, "detect.plugin_examples:bright_squares"]) == 0
    dets = load_detections(tmp_path / "d" / "clip.parquet")
    assert len(dets) == 12 and dets.meta["category"] == "square"
    np.testing.assert_allclose(dets.xyxy[0], [5, 5, 15, 15])
    assert main([*argv, "detect.plugin_examples:wrong_shapes", "--overwrite"]) == 2
    assert "expected boxes (K, 4)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("unknown backend", ["--backend", "yolo"], "unknown backend 'yolo'"),
        ("unknown category", ["--backend", "torchvision", "--weights", "{ckpt}",
                              "--category", "dog"], "unknown category 'dog'"),
        ("missing weights file", ["--backend", "torchvision", "--weights", "nope.pt"],
         "nope.pt: checkpoint file not found"),
        ("onnx without category", ["--backend", "onnx", "--weights", "m.onnx"], "--category"),
        ("missing onnx file", ["--backend", "onnx", "--weights", "m.onnx", "--category", "1"],
         "m.onnx: ONNX model not found"),
        ("empty onnx input size", ["--backend", "onnx", "--weights", "m.onnx", "--category",
                                   "1", "--input-size", "0x640"], "expected positive WxH"),
        ("zero onnx std", ["--backend", "onnx", "--weights", "m.onnx", "--category", "1",
                           "--std", "0,1,1"], "onnx std: expected > 0"),
        ("nan score threshold", ["--score-threshold", "nan"],
         "score_threshold: expected a score in [0, 1], got nan"),
        ("score threshold above 1", ["--score-threshold", "2"],
         "score_threshold: expected a score in [0, 1], got 2"),
        ("hog nms iou", ["--nms-iou", "5"], "nms_iou: expected a value in [0, 1], got 5"),
        ("hog on a GPU", ["--device", "cuda:7"],
         "hog backend runs on the CPU only: --device cuda:7"),
        ("negative workers", ["--workers", "-1"], "--workers: expected 0 (automatic) or more"),
        ("empty chunks", ["--chunk-frames", "0"], "--chunk-frames: expected >= 1"),
        ("nan onnx std", ["--backend", "onnx", "--weights", "m.onnx", "--category", "1",
                          "--std", "nan,1,1"], "onnx std: expected > 0"),
        ("nan onnx scale", ["--backend", "onnx", "--weights", "m.onnx", "--category", "1",
                            "--pixel-scale", "nan"], "onnx scale: expected > 0"),
        ("inf onnx mean", ["--backend", "onnx", "--weights", "m.onnx", "--category", "1",
                           "--mean", "0,inf,0"], "onnx mean: expected finite numbers"),
        # Checked before any model is loaded: the published weights are not downloaded.
        ("unknown COCO category", ["--backend", "torchvision", "--category", "unicorn"],
         "unknown category 'unicorn'; choose from person, bicycle"),
        ("unknown weights", ["--backend", "torchvision", "--weights", "nope"],
         "choose from DEFAULT, COCO_V1 or a checkpoint file"),
        ("not a device", ["--backend", "torchvision", "--device", "gpu"],
         "device: 'gpu' is not a torch device"),
        ("missing CUDA device", ["--backend", "torchvision", "--device", "cuda:99"],
         "device: 'cuda:99' asked for"),
        ("half on the CPU", ["--backend", "torchvision", "--half"], "--half needs a CUDA device"),
        ("nms iou", ["--backend", "torchvision", "--nms-iou", "2"], "nms_iou: expected a value"),
    ],
)  # fmt: skip
def test_bad_detector_options(tiny_checkpoint, small_video, tmp_path, capsys, name, extra, message):
    extra = [e.replace("{ckpt}", str(tiny_checkpoint)) for e in extra]
    assert main(["detect", str(small_video), "--out", str(tmp_path / "d"), *extra]) == 2, name
    assert message in capsys.readouterr().err


def test_outputs_not_matching_the_declared_layout(tmp_path, small_video, capsys):
    rows = np.array([[1.0, 2.0, 3.0, 4.0, 0.9, 1.0]])
    path = constant_rows_model(tmp_path / "c.onnx", rows, [1, 3, 150, 200])
    argv = ["detect", str(small_video), "--out", str(tmp_path / "d"), "--backend", "onnx",
            "--weights", str(path), "--category", "1"]  # fmt: skip
    assert main(argv) == 2  # declared separate boxes/scores/labels, the model gives rows
    assert "expects outputs named boxes, scores, labels" in capsys.readouterr().err


_HOLD = """
import sys, time
from flickermine._atomic import lock_exclusively
lock_exclusively(sys.argv[1])  # as another detect run on this video does
print("holding", flush=True)
time.sleep(60)
"""


def test_two_runs_into_one_folder_never_detect_the_same_video_at_once(small_video, tmp_path):
    from flickermine.detect import PluginDetector
    from flickermine.errors import OutputExistsError
    from tests_helpers import another_run

    det = PluginDetector("detect.plugin_examples:bright_squares")
    out = tmp_path / "d" / f"{small_video.stem}.parquet"
    out.parent.mkdir()
    lock = out.parent / f".{small_video.stem}.detect.lock"
    script = tmp_path / "hold.py"
    script.write_text(_HOLD)
    with another_run(script, str(lock)):
        with pytest.raises(OutputExistsError, match="another run .* is detecting this video"):
            detect_to_file(small_video, det, out)
        assert not out.exists()
    _, computed = detect_to_file(small_video, det, out)  # the other run died: free again
    assert computed and out.exists() and not lock.exists()


def test_video_that_cannot_be_decoded_half_way(tmp_path):
    from flickermine.detect import PluginDetector
    from flickermine.errors import VideoError

    from factories import render_frames, write_video

    avi = write_video(tmp_path / "cut.avi", render_frames(30))
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    det = PluginDetector("detect.plugin_examples:bright_squares")
    with pytest.raises(VideoError, match=r"decoding stopped at frame \d+ of the 30"):
        detect_to_file(avi, det, tmp_path / "d" / "cut.parquet", chunk_frames=4)
    kept = list((tmp_path / "d" / ".cut.detect-partial").glob("chunk_*.parquet"))
    assert kept and not (tmp_path / "d" / "cut.parquet").exists()


RESUME_SCRIPT = """
import sys, time
from flickermine.detect import detect_to_file
from flickermine.detect.torchvision_backend import TorchvisionDetector
import torch
torch.set_num_threads(1)
det = TorchvisionDetector(weights=sys.argv[1], score_threshold=0.0, nms_iou=0.5)
slow = sys.argv[4] == "slow"
def call(frames):
    if slow:
        time.sleep(0.2)
    return det(frames)
call.description, call.category, call.score_threshold, call.nms_iou = (
    det.description, det.category, det.score_threshold, det.nms_iou)
detect_to_file(sys.argv[2], call, sys.argv[3], batch_size=2, chunk_frames=4)
"""


def test_interrupted_run_resumes_to_the_same_file(tiny_checkpoint, small_video, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    full = tmp_path / "full" / "clip.parquet"
    subprocess.run([sys.executable, str(script), str(tiny_checkpoint), str(small_video), str(full),
                    "fast"], check=True)  # fmt: skip
    out = tmp_path / "resumed" / "clip.parquet"
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_checkpoint), str(small_video),
                             str(out), "slow"])  # fmt: skip
    partial = out.parent / ".clip.detect-partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(partial.glob("chunk_*_000000004.parquet")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and list(partial.glob("chunk_*.parquet"))
    subprocess.run([sys.executable, str(script), str(tiny_checkpoint), str(small_video), str(out),
                    "fast"], check=True)  # fmt: skip
    assert not partial.exists()
    a, b = load_detections(full), load_detections(out)
    assert a.equals(b, meta=True)
    assert out.read_bytes() == full.read_bytes()
    assert json.loads(json.dumps(a.meta))["category"] == "thing"


def test_damaged_leftovers_of_an_interrupted_run_are_detected_again(small_video, tmp_path):
    from detect.plugin_examples import bright_squares

    class Squares:  # stops after a number of frames, like a killed run
        category, description = "square", "squares"

        def __init__(self, stop_after=None):
            self.stop_after, self.seen = stop_after, 0

        def __call__(self, frames):
            if self.stop_after is not None and self.seen >= self.stop_after:
                raise KeyboardInterrupt
            self.seen += len(frames)
            return bright_squares(frames)

    full, _ = detect_to_file(small_video, Squares(), tmp_path / "full.parquet", chunk_frames=4)
    out = tmp_path / "out" / "clip.parquet"
    partial = out.parent / ".clip.detect-partial"
    for damage in ("chunk", "marker"):
        with pytest.raises(KeyboardInterrupt):
            detect_to_file(small_video, Squares(stop_after=9), out, chunk_frames=4)
        chunks = sorted(partial.glob("chunk_*.parquet"))
        assert [c.name for c in chunks][:2] == [
            "chunk_000000000_000000004.parquet", "chunk_000000004_000000008.parquet"]  # fmt: skip
        if damage == "chunk":
            chunks[1].write_bytes(b"PAR1 damaged")
        else:
            (partial / "run.json").write_text("{not json")
        got, computed = detect_to_file(small_video, Squares(), out, chunk_frames=4)
        assert computed and got.equals(full) and not partial.exists()
        out.unlink()


def test_a_resumed_run_on_a_video_with_b_frames_ends_with_the_same_file(tmp_path):
    # Resuming skips decoding the earlier frames nothing later depends on (B-frames here).
    from detect.plugin_examples import bright_squares

    from factories import Sprite, render_frames, texture, write_video

    a = Sprite(texture(3, 40, 30), {t: (10 + 5 * t, 20 + (t % 7)) for t in range(30)})
    frames = render_frames(30, 240, 120, [a])
    for t, f in enumerate(frames):
        f[5 + t : 15 + t, 200:212] = 255  # a moving bright square: boxes differ frame by frame
    video = write_video(tmp_path / "b.mp4", frames, bframes=3)

    class Squares:
        category, description = "square", "squares"

        def __init__(self, stop_after=None):
            self.stop_after, self.seen = stop_after, []

        def __call__(self, batch):
            if self.stop_after is not None and len(self.seen) >= self.stop_after:
                raise KeyboardInterrupt
            self.seen.extend(f.copy() for f in batch)
            return bright_squares(batch)

    full, _ = detect_to_file(video, Squares(), tmp_path / "full.parquet", chunk_frames=4)
    out = tmp_path / "out" / "b.parquet"
    with pytest.raises(KeyboardInterrupt):
        detect_to_file(video, Squares(stop_after=14), out, chunk_frames=4)
    resumed = Squares()
    got, computed = detect_to_file(video, resumed, out, chunk_frames=4)
    assert (
        computed
        and got.equals(full)
        and out.read_bytes() == (tmp_path / "full.parquet").read_bytes()
    )
    assert len(resumed.seen) == 30 - 12  # from the first frame of the unfinished chunk
    reference = Squares()
    detect_to_file(video, reference, tmp_path / "again.parquet", chunk_frames=4)
    for seen, want in zip(resumed.seen, reference.seen[12:], strict=True):
        assert np.array_equal(seen, want)  # the right frames, decoded exactly


def test_published_weights_without_a_network_say_what_to_do(tmp_path, capsys, monkeypatch):
    import socket

    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=2).close()
        pytest.skip("a network is reachable: the offline message cannot be observed")
    except OSError:
        pass
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-cache"))
    argv = ["detect", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "d"),
            "--backend", "torchvision", "--model", "fasterrcnn_mobilenet_v3_large_320_fpn",
            "--category", "dog"]  # fmt: skip
    from factories import render_frames, write_video

    write_video(tmp_path / "v.mp4", render_frames(2))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Without a network, pass a checkpoint file (--weights FILE)" in err


def test_hog_person_boxes_are_the_window_less_its_margin():
    from flickermine.demo import sample_video
    from flickermine.detect import HogPeopleDetector
    from flickermine.video import VideoReader

    frames = [f.bgr for f, _ in zip(VideoReader(sample_video()).frames(), range(8), strict=False)]
    window = HogPeopleDetector(box="window")(frames)
    person = HogPeopleDetector()(frames)
    assert sum(len(s) for _, s in window) > 0
    for (wb, ws), (pb, ps) in zip(window, person, strict=True):
        w, h = wb[:, 2] - wb[:, 0], wb[:, 3] - wb[:, 1]
        expected = np.stack(
            [wb[:, 0] + w / 4, wb[:, 1] + h / 8, wb[:, 2] - w / 4, wb[:, 3] - h / 8], axis=1
        )
        order = np.lexsort((expected[:, 3], expected[:, 2], expected[:, 1], expected[:, 0], -ws))
        np.testing.assert_allclose(pb, expected[order], rtol=1e-6)
        np.testing.assert_array_equal(ps, ws[order])
    assert HogPeopleDetector().description != HogPeopleDetector(box="window").description
