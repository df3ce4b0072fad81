"""A smoke run of examples/pets09 (few frames, few iterations): the summary is produced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flickermine.cli.main import main

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pets09" / "config.yaml"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "pets09-s2l1"


@pytest.mark.slow
def test_pets09_example_smoke(tmp_path):
    if not (DATA / "PETS09-S2L1.avi").is_file():
        pytest.skip(f"PETS09-S2L1 not found in {DATA} (the shared data folder beside the repo)")
    cfg = yaml.safe_load(EXAMPLE.read_text())
    for part in cfg["data"].values():  # the example's paths are relative to its folder
        for key in ("video", "gt"):
            if key in part:
                part[key] = str((EXAMPLE.parent / part[key]).resolve())
    cfg["data"]["labelled"]["frames"] = "0:300:15"
    cfg["data"]["unlabelled"]["frames"] = "325:400"
    cfg["data"]["test"]["frames"] = "625:795:34"
    cfg["start"]["train"].update(iterations=20, checkpoint_every=10, min_size=192, max_size=256)
    cfg["finetune"].update(iterations=5, checkpoint_every=5, min_size=192, max_size=256)
    cfg["seeds"] = [0]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "-q"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {e["arm"] for e in summary["table"]} == {a["name"] for a in cfg["arms"]}
    assert (tmp_path / "run" / "summary.md").is_file()


def test_coco_dog_config_is_valid_but_for_its_data(tmp_path):
    from flickermine.pipeline import load_run_config

    cfg = yaml.safe_load((EXAMPLE.parents[1] / "coco-dog" / "config.yaml").read_text())
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "images").mkdir()
    (tmp_path / "videos").mkdir()
    cfg["data"] = {
        "labelled": {"annotations": "a.json", "images": "images"},
        "unlabelled": {"videos": "videos"},
        "test": {"annotations": "a.json", "images": "images"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_run_config(path)
    assert [a.name for a in config.arms] == ["control", "hn-seed", "hn-recall", "hp-recall"]
    assert config.finetune["lr_schedule"] == "1e-4:15000,1e-5:22000"
