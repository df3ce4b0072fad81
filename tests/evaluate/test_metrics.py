"""COCO metrics: parity with pycocotools, golden values, empty predictions, comparisons."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from flickermine.cli.main import main
from flickermine.dataset.coco import CocoError
from flickermine.evaluate import STAT_NAMES, coco_metrics
from flickermine.evaluate.compare import false_positives


def synthetic(seed: int, n_images: int = 30):
    """Ground truth with boxes of all sizes and noisy, partly wrong detections."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i}.png", "width": 640, "height": 480})
        for _ in range(int(rng.integers(0, 5))):
            w, h = rng.uniform(8, 300, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = int(rng.choice([3, 4]))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
            if rng.random() < 0.8:
                j = rng.normal(0, 0.08, 4) * [w, h, w, h]
                box = [x + j[0], y + j[1], abs(w + j[2]), abs(h + j[3])]
                dets.append({"image_id": i, "category_id": cat, "score": float(rng.random()),
                             "bbox": box})  # fmt: skip
        for _ in range(int(rng.integers(0, 3))):
            dets.append({"image_id": i, "category_id": 3, "score": float(rng.random()),
                         "bbox": [*rng.uniform(0, 300, 2), *rng.uniform(10, 200, 2)]})  # fmt: skip
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 3, "name": "car"}, {"id": 4, "name": "bus"}]}  # fmt: skip
    return gt, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faster_coco_eval_gives_pycocotools_numbers(seed):
    gt, dets = synthetic(seed)
    fast = coco_metrics(gt, dets, "car", backend="faster_coco_eval")
    ref = coco_metrics(gt, dets, "car", backend="pycocotools")
    for name in STAT_NAMES:
        assert getattr(fast, name) == pytest.approx(getattr(ref, name), abs=1e-9), name
    assert 0.1 < fast.ap < 0.9  # a non-trivial case


def test_golden_values():
    gt = {"images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.png"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40],
                           "area": 1600, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "x"}]}  # fmt: skip
    perfect = coco_metrics(gt, [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40],
                                 "score": 0.9}])  # fmt: skip
    assert perfect.ap == pytest.approx(1.0) and perfect.ap_medium == pytest.approx(1.0)
    assert perfect.ap_small == -1 and perfect.ap_large == -1  # no such ground truth
    # IoU 0.6: a hit at thresholds .50, .55, .60 of ten -> AP 0.3, AP50 1, AP75 0.
    shifted = coco_metrics(gt, [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 24],
                                 "score": 0.9}])  # fmt: skip
    assert (shifted.ap, shifted.ap50, shifted.ap75) == pytest.approx((0.3, 1.0, 0.0))


def test_empty_predictions_give_zero_not_a_crash():
    gt, _ = synthetic(0)
    m = coco_metrics(gt, [], "car")
    assert m.ap == 0 and m.ar100 == 0 and m.detections == 0


def test_ground_truth_without_the_category(tmp_path, capsys):
    gt, dets = synthetic(0)
    with pytest.raises(CocoError, match="no category 'dog'"):
        coco_metrics(gt, dets, "dog")
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "d.json").write_text(json.dumps(dets))
    argv = ["evaluate", "--detections", str(tmp_path / "d.json"), "--gt", str(tmp_path / "gt.json")]
    assert main([*argv, "--category", "dog"]) == 2
    assert "no category 'dog'" in capsys.readouterr().err
    assert main([*argv, "--category", "car", "--out", str(tmp_path / "m.json")]) == 0
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["ap"] == pytest.approx(coco_metrics(gt, dets, "car").ap)


def test_compare_counts_false_positives_and_draws_pairs(tmp_path):
    gt, dets = synthetic(4, n_images=6)
    for img in gt["images"]:
        cv2.imwrite(str(tmp_path / img["file_name"]), np.full((480, 640, 3), 80, np.uint8))
    fps = false_positives(gt, dets, 3, 0.5)
    removed_from = next(i for i, f in fps.items() if f)
    better = [d for d in dets if not any(d is f for f in fps[removed_from])]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "a.json").write_text(json.dumps(dets))
    (tmp_path / "b.json").write_text(json.dumps(better))
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--gt",
                 str(tmp_path / "gt.json"), "--images", str(tmp_path), "--out", str(out),
                 "--category", "car"]) == 0  # fmt: skip
    result = json.loads((out / "compare.json").read_text())
    assert removed_from in result["images_false_positive_removed"]
    assert result["images_false_positive_added"] == []
    fp = result["false_positives_per_image"]
    assert fp["B"] == pytest.approx(fp["A"] - len(fps[removed_from]) / 6)
    assert result["delta"]["ap"] >= 0
    pair = next(p for p in result["pairs"] if p["image_id"] == removed_from)
    before, after = cv2.imread(str(out / pair["before"])), cv2.imread(str(out / pair["after"]))
    assert before.shape == after.shape == (480, 640, 3) and (before != after).any()
    assert "false positives" in (out / "README.md").read_text()


def test_malformed_results_are_refused_naming_the_file_and_the_entry(tmp_path, capsys):
    gt, dets = synthetic(1)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    argv = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--category", "car", "--detections"]
    for k, (key, value, message) in enumerate([
        ("bbox", [1, 2, 3], "invalid bbox"),
        ("score", "high", "invalid score 'high'"),
        ("image_id", 12345, "unknown image 12345"),
    ]):  # fmt: skip
        bad = [dict(d) for d in dets]
        bad[3][key] = value
        path = tmp_path / f"r{k}.json"
        path.write_text(json.dumps(bad))
        assert main([*argv, str(path)]) == 2
        assert f"r{k}.json: result 3 " in (err := capsys.readouterr().err) and message in err
        with pytest.raises(CocoError, match=f"result 3 .*{message}"):
            coco_metrics(gt, bad, "car")
    # numpy numbers from a library caller are fine
    gt["annotations"][0]["area"] = np.float32(gt["annotations"][0]["area"])
    gt["images"][0]["id"] = np.int64(gt["images"][0]["id"])
    assert coco_metrics(gt, [{**d, "score": np.float32(d["score"])} for d in dets], "car").ap > 0


def test_compare_gives_no_difference_where_a_statistic_is_undefined(tmp_path, capsys):
    gt, dets = synthetic(4, n_images=6)
    gt["annotations"] = [a for a in gt["annotations"] if a["area"] > 96**2]  # no small boxes
    for img in gt["images"]:
        cv2.imwrite(str(tmp_path / img["file_name"]), np.full((480, 640, 3), 80, np.uint8))
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "a.json").write_text(json.dumps(dets))
    (tmp_path / "b.json").write_text(json.dumps(dets[::2]))
    out = tmp_path / "cmp"
    argv = ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--gt",
            str(tmp_path / "gt.json"), "--images", str(tmp_path), "--out", str(out),
            "--category", "car"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "compare.json").read_text())
    assert result["A"]["ap_small"] == result["B"]["ap_small"] == -1
    assert result["delta"]["ap_small"] is None
    assert result["delta"]["ap"] == pytest.approx(result["B"]["ap"] - result["A"]["ap"], abs=1e-6)
    assert "| ap_small | n/a | n/a | n/a |" in (out / "README.md").read_text()
    # No ground truth of the category at all: every AP is undefined, so is the difference.
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] != 3]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    capsys.readouterr()
    assert main([*argv[:-3], str(tmp_path / "cmp2"), "--category", "car"]) == 0
    assert "car: AP n/a -> n/a (n/a)" in capsys.readouterr().out


def test_compare_refuses_a_non_finite_threshold_and_negative_pair_count(tmp_path, capsys):
    gt, dets = synthetic(4, n_images=3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "a.json").write_text(json.dumps(dets))
    argv = ["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--gt",
            str(tmp_path / "gt.json"), "--images", str(tmp_path), "--out", str(tmp_path / "c"),
            "--category", "car"]  # fmt: skip
    assert main([*argv, "--score-threshold", "nan"]) == 2
    assert "score_threshold: expected a finite number" in capsys.readouterr().err
    assert main([*argv, "--max-pairs=-1"]) == 2
    assert "max_pairs: expected >= 0" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
