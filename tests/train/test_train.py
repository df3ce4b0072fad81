"""Training: a small Faster R-CNN really learns; resume is exact; negatives are kept; DDP."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flickermine.cli.main import main  # noqa: E402
from flickermine.dataset import load_coco  # noqa: E402
from flickermine.errors import ConfigError  # noqa: E402
from flickermine.train import TrainConfig, load_config, train  # noqa: E402
from flickermine.train.data import CocoTrainSet  # noqa: E402

from factories import make_shapes_dataset  # noqa: E402


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), 40)


def tiny(shapes: Path, out: Path, **kw) -> TrainConfig:
    base = dict(train=str(shapes), images=str(shapes.parent / "images"), out=str(out),
                category="disc", model="fasterrcnn_tiny", weights=None, batch_size=4, lr=0.02,
                min_size=128, max_size=128, log_every=25, checkpoint_every=1000,
                seed=0)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_small_faster_rcnn_learns_the_category(shapes, tmp_path, capsys):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    argv = ["train", str(shapes), "--images", str(shapes.parent / "images"), "--out", str(run),
            "--category", "disc", "--model", "fasterrcnn_tiny", "--weights", "none",
            "--iterations", "250", "--batch-size", "4", "--lr", "0.02", "--step-size", "200",
            "--min-size", "128", "--max-size", "128", "--log-every", "25",
            "--val", str(shapes), "--val-every", "125"]  # fmt: skip
    assert main(argv) == 0
    with (run / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses[-1] < losses[0] / 3
    assert [r["val_ap"] != "" for r in rows].count(True) == 2
    for name in ("final.pt", "best.pt", "last.pt", "config.yaml", "training.png"):
        assert (run / name).is_file(), name
    capsys.readouterr()
    assert main(["evaluate", str(run / "final.pt"), "--gt", str(shapes), "--images",
                 str(shapes.parent / "images"), "--category", "disc",
                 "--out", str(tmp_path / "m.json")]) == 0  # fmt: skip
    import json

    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["ap"] > 0.5 and metrics["ap50"] > 0.85
    # The checkpoint loads in detect's torchvision backend.
    from flickermine.detect.torchvision_backend import TorchvisionDetector

    det = TorchvisionDetector(weights=str(run / "best.pt"), score_threshold=0.5)
    assert det.category == "disc"


def test_resume_ends_with_the_same_weights(shapes, tmp_path):
    torch.set_num_threads(1)
    straight = train(tiny(shapes, tmp_path / "a", iterations=8, batch_size=2))
    cfg = tiny(shapes, tmp_path / "b", iterations=8, batch_size=2)
    train(cfg, stop_after=3)
    resumed = train(cfg, resume=True)
    a = torch.load(straight["final"], weights_only=False)["model"]
    b = torch.load(resumed["final"], weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.load(resumed["final"], weights_only=False)["iteration"] == 8
    other = tiny(
        shapes, tmp_path / "b", iterations=8, model="fasterrcnn_mobilenet_v3_large_320_fpn"
    )
    with pytest.raises(ConfigError, match=r"last\.pt: cannot resume from it .*another --model"):
        train(other, resume=True)


def test_negative_only_images_are_kept_and_trained_on(tmp_path):
    import json

    root = tmp_path / "neg"
    ann = make_shapes_dataset(root, 10)
    coco = json.loads(ann.read_text())
    keep = coco["annotations"][0]["image_id"]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] == keep]
    ann.write_text(json.dumps(coco))
    data = CocoTrainSet(load_coco(ann), root / "images", "disc", str(ann))
    assert len(data) == 10  # nine images without any box stay in
    empty = sum(1 for _, boxes in data.images if len(boxes) == 0)
    assert empty == 9
    summary = train(tiny(ann, tmp_path / "run", iterations=6, batch_size=1, category=None
                         if len(coco["categories"]) == 1 else "disc"))  # fmt: skip
    assert summary["iterations"] == 6
    assert all(np.isfinite(float(r["loss"])) for r in summary["history"] if r["loss"] != "")


def test_seed_schedules_and_yaml_config(tmp_path):
    dog = TrainConfig(lr_schedule="1e-3:10000,1e-4:20000,1e-5:29000")
    assert dog.iterations == 29000
    assert [dog.lr_at(i) for i in (0, 9999, 10000, 19999, 20000, 28999)] == [
        1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]  # fmt: skip
    trainset = TrainConfig(lr=1e-3, step_size=10000, gamma=0.1, iterations=26000)
    assert trainset.lr_at(9999) == 1e-3 and trainset.lr_at(10000) == pytest.approx(1e-4)
    assert trainset.lr_at(25999) == pytest.approx(1e-5)
    (tmp_path / "c.yaml").write_text('lr_schedule: "1e-4:15000,1e-5:22000"\nbatch_size: 1\n')
    cfg = load_config(tmp_path / "c.yaml", {"batch_size": 2, "seed": None})
    assert cfg.iterations == 22000 and cfg.batch_size == 2 and cfg.lr_at(15000) == 1e-5


def test_yaml_values_are_read_as_their_options_types(tmp_path):
    # YAML reads 1e-3 as text (its floats need a dot): numbers written so are still numbers.
    (tmp_path / "c.yaml").write_text("lr: 1e-3\niterations: 1.0e+4\ncategory: 18\nhflip: no\n")
    cfg = load_config(tmp_path / "c.yaml", {})
    assert (cfg.lr, cfg.iterations, cfg.category, cfg.hflip) == (1e-3, 10000, "18", False)
    # config.yaml of a run by an earlier version, with an option since retired: still loads
    (tmp_path / "old.yaml").write_text("workers: 2\nbatch_size: 3\n")
    assert load_config(tmp_path / "old.yaml", {}).batch_size == 3
    assert isinstance(cfg.iterations, int)
    for line, message in [
        ("iterations: abc", "iterations: expected an integer, got 'abc'"),
        ("batch_size: 2.5", "batch_size: expected an integer, got 2.5"),
        ("hflip: 3", "hflip: expected a bool, got 3"),
        ("momentum: [0.9]", r"momentum: expected a number, got \[0.9\]"),
        ("lr: .nan", "lr: expected a number, got nan"),
        ("lr: -1", r"lr: expected > 0"),
        ("min_size: 0", "min_size: expected an integer >= 1, got 0"),
        ("max_size: 100\nmin_size: 600", r"max_size: expected >= min_size \(600\), got 100"),
        ("gamma: 0", "gamma: expected > 0"),
        ("step_size: 0", "step_size: expected an integer >= 1"),
        ("momentum: 1.5", r"momentum: expected a value in \[0, 1\)"),
        ("weight_decay: -0.1", "weight_decay: expected >= 0"),
        ("lr_schedule: '0:100'", "lr_schedule: learning rates must be > 0"),
    ]:
        (tmp_path / "bad.yaml").write_text(line + "\n")
        with pytest.raises(ConfigError, match=rf"bad\.yaml: {message}"):
            load_config(tmp_path / "bad.yaml", {})


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("category absent", {"category": "dog"}, "no category 'dog'"),
        ("no annotation of the category", {"category": "square", "drop": 9},
         "no annotation of category 'square'"),
        ("images missing", {"images": "elsewhere"}, "image(s) missing on disk"),
        ("image record without file name", {"no_file_name": True}, "has no file_name"),
        ("checkpoint of another model", {"weights": "ckpt", "model":
                                         "fasterrcnn_mobilenet_v3_large_320_fpn"},
         "checkpoint is a fasterrcnn_tiny, not a fasterrcnn_mobilenet_v3_large_320_fpn"),
        ("not a device", {"device": "gpu"}, "device: 'gpu' is not a torch device"),
        ("published weights of the test model", {"weights": "DEFAULT"},
         "fasterrcnn_tiny has no published weights"),
        ("missing CUDA device", {"device": "cuda:99"}, "device: 'cuda:99' asked for"),
    ],
)  # fmt: skip
def test_bad_training_inputs(shapes, tmp_path, capsys, name, edit, message):
    import json

    from flickermine.models import build_model, save_checkpoint

    ann = shapes
    if "drop" in edit or "no_file_name" in edit:
        coco = json.loads(shapes.read_text())
        coco["annotations"] = [
            a for a in coco["annotations"] if a["category_id"] != edit.get("drop")
        ]
        if "no_file_name" in edit:
            del coco["images"][3]["file_name"]
        ann = tmp_path / "t.json"
        ann.write_text(json.dumps(coco))
    images = str(tmp_path / edit["images"]) if "images" in edit else str(shapes.parent / "images")
    argv = ["train", str(ann), "--images", images, "--out", str(tmp_path / "run"),
            "--category", edit.get("category", "disc"), "--iterations", "1",
            "--model", edit.get("model", "fasterrcnn_tiny"), "--min-size", "128",
            "--device", edit.get("device", "cpu")]  # fmt: skip
    if edit.get("weights") == "DEFAULT":
        argv += ["--weights", "DEFAULT"]
    elif edit.get("weights") == "ckpt":
        ckpt = tmp_path / "tiny.pt"
        save_checkpoint(ckpt, build_model("fasterrcnn_tiny", 2), "fasterrcnn_tiny",
                        [{"id": 5, "name": "disc"}])  # fmt: skip
        argv += ["--weights", str(ckpt)]
    else:
        argv += ["--weights", "none"]
    assert main(argv) == 2, name
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if "no_file_name" in edit:
        assert f"t.json: image {coco['images'][3]['id']} has no file_name" in err


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes(shapes, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29517", "-m", "flickermine.cli.main", "train", str(shapes),
           "--images", str(shapes.parent / "images"), "--out", str(run), "--category", "disc",
           "--model", "fasterrcnn_tiny", "--weights", "none", "--iterations", "4",
           "--batch-size", "1", "--min-size", "128", "--max-size", "128",
           "--log-every", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "final.pt").is_file()
    with (run / "log.csv").open() as fh:
        assert [r["iteration"] for r in csv.DictReader(fh)] == ["2", "4"]
    # Both processes trained: the gradients were averaged, so one set of weights was written.
    assert torch.load(run / "final.pt", weights_only=False)["iteration"] == 4


def test_train_into_a_used_folder_needs_resume_or_overwrite(tmp_path, capsys):
    torch.set_num_threads(1)
    root = tmp_path / "shapes"
    ann = make_shapes_dataset(root, 6)
    run = tmp_path / "run"
    (run).mkdir()
    (run / "notes.txt").write_text("mine")
    argv = ["train", str(ann), "--images", str(root / "images"), "--out", str(run), "--category",
            "disc", "--model", "fasterrcnn_tiny", "--weights", "none", "--iterations", "1",
            "--batch-size", "2", "--min-size", "64", "--max-size", "64", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert main(argv) == 2
    assert "pass --resume to continue it or --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    with (run / "log.csv").open() as fh:
        assert [r["iteration"] for r in csv.DictReader(fh)] == ["1"]  # not appended to
    assert (run / "notes.txt").read_text() == "mine" and (run / "training.png").is_file()
