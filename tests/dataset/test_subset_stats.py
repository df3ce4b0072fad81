from __future__ import annotations

import json

import pytest

from flickermine.cli.main import main
from flickermine.dataset import CocoError, coco_stats, load_coco, single_category_subset

from factories import make_coco


@pytest.fixture
def coco():
    return make_coco(n_images=200, seed=5)


def test_subset_keeps_one_category_with_original_ids(coco):
    sub = single_category_subset(coco, "dog")
    assert sub["categories"] == [{"supercategory": "animal", "id": 18, "name": "dog"}]
    assert all(a["category_id"] == 18 for a in sub["annotations"])
    with_dog = {a["image_id"] for a in coco["annotations"] if a["category_id"] == 18}
    assert {i["id"] for i in sub["images"]} == with_dog
    assert sub["info"] == coco["info"] and sub["licenses"] == coco["licenses"]


def test_negatives_are_a_seeded_fraction(coco):
    with_dog = {a["image_id"] for a in coco["annotations"] if a["category_id"] == 18}
    without = len(coco["images"]) - len(with_dog)
    a = single_category_subset(coco, 18, negatives=0.25, seed=1)
    b = single_category_subset(coco, 18, negatives=0.25, seed=1)
    c = single_category_subset(coco, 18, negatives=0.25, seed=2)
    assert len(a["images"]) == len(with_dog) + round(0.25 * without)
    assert a == b and a != c


def test_splits_by_fraction_and_count(coco, tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    out = tmp_path / "sub"
    argv = ["dataset", "subset", str(path), "--category", "dog", "--negatives", "0.1"]
    assert main([*argv, "--out", str(out), "--split", "train=0.6,val=0.2,test=0.2"]) == 0
    parts = {n: load_coco(out / f"{n}.json") for n in ("train", "val", "test")}
    ids = [{i["id"] for i in p["images"]} for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    total = len(single_category_subset(coco, "dog", negatives=0.1)["images"])
    assert sum(map(len, ids)) == total
    for p in parts.values():
        kept = {i["id"] for i in p["images"]}
        assert all(a["image_id"] in kept for a in p["annotations"])
    assert main([*argv, "--out", str(out), "--split", "train=10,val=rest", "--overwrite"]) == 0
    assert len(load_coco(out / "train.json")["images"]) == 10
    assert main([*argv, "--out", str(tmp_path / "x"), "--split", "train=100000"]) == 2
    assert "asks for 100000 images" in capsys.readouterr().err
    with pytest.raises(CocoError, match="no category 'cat'"):
        single_category_subset(coco, "cat")


def test_stats(coco, tmp_path, capsys):
    s = coco_stats(coco)
    assert s["images"] == 200 and s["annotations"] == len(coco["annotations"])
    assert s["box_sizes"]["small"] + s["box_sizes"]["medium"] + s["box_sizes"]["large"] == len(
        coco["annotations"]
    )
    empty = sum(
        1 for i in coco["images"] if not any(a["image_id"] == i["id"] for a in coco["annotations"])
    )
    assert s["images_without_annotations"] == empty and s["mined_images"] == 0
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    assert main(["dataset", "stats", str(path)]) == 0
    assert "images                    200" in capsys.readouterr().out


def test_stats_and_subset_refuse_a_malformed_file_naming_it(tmp_path, capsys):
    coco = make_coco(seed=2)
    del coco["annotations"][0]["image_id"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(coco))
    assert main(["dataset", "stats", str(path)]) == 2
    assert main(["dataset", "subset", str(path), "--category", "dog", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("broken.json: annotation") == 2 and "refers to unknown image None" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["broken.json"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("train=1.5", "a fraction is in [0, 1]"),
        ("train=nan", "a fraction is in [0, 1]"),
        ("train=0.5,train=0.5", "'train' is named twice"),
        ("train=0.5,val=20", "every split as a fraction or every one as a count"),
        ("a/b=10", "cannot be a file name"),
        ("train=rest,val=rest", "only one split can be 'rest'"),
        ("train=0.8,val=0.3", "fractions add up to more than 1"),
    ],
)
def test_malformed_splits_are_refused(coco, tmp_path, capsys, spec, message):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    argv = ["dataset", "subset", str(path), "--category", "dog", "--out", str(tmp_path / "o")]
    assert main([*argv, "--split", spec]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_fraction_of_one_is_every_image_and_a_count_of_one_is_one(coco, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    argv = ["dataset", "subset", str(path), "--category", "dog", "--out"]
    total = len(single_category_subset(coco, "dog")["images"])
    assert main([*argv, str(tmp_path / "a"), "--split", "val=0.0,train=1.0"]) == 0
    assert len(load_coco(tmp_path / "a" / "train.json")["images"]) == total
    assert main([*argv, str(tmp_path / "b"), "--split", "val=0,train=1"]) == 0
    assert len(load_coco(tmp_path / "b" / "train.json")["images"]) == 1


def test_frames_dataset_from_a_video_and_mot_ground_truth(tmp_path):
    import json

    from flickermine.cli.main import main
    from flickermine.dataset import load_coco

    from factories import Sprite, render_frames, texture, write_video

    n = 12
    a = Sprite(texture(3, 40, 24), {t: (20 + t, 40) for t in range(n)})
    video = write_video(tmp_path / "walk.mp4", render_frames(n, 160, 120, [a]))
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{t + 1},1,{20 + t},40,24,40,{int(t != 4)}\n" for t in range(n)))
    out = tmp_path / "ds"
    assert main(["dataset", "frames", str(video), "--out", str(out), "--frames", "2:10:2",
                 "--gt", str(gt), "-q"]) == 0  # fmt: skip
    coco = load_coco(out / "annotations.json")
    assert [(i["frame"], i["video"]) for i in coco["images"]] == [
        (3, "walk.mp4"),
        (5, "walk.mp4"),
        (7, "walk.mp4"),
        (9, "walk.mp4"),
    ]
    assert all((out / "images" / i["file_name"]).is_file() for i in coco["images"])
    by_frame = {i["frame"]: i["id"] for i in coco["images"]}
    ann5 = [a for a in coco["annotations"] if a["image_id"] == by_frame[5]]
    assert ann5[0]["bbox"] == [24, 40, 24, 40] and ann5[0]["iscrowd"] == 1  # consider = 0
    assert main(["dataset", "frames", str(video), "--out", str(out), "-q"]) == 2
    assert json.loads((out / "annotations.json").read_text())["images"][0]["frame"] == 3


def _video_coco():
    images, anns = [], []
    for v in ("a.mp4", "b.mp4"):
        for f in range(1, 101):
            images.append({"id": len(images) + 1, "file_name": f"{v}_{f}.jpg", "video": v,
                           "frame": f, "width": 10, "height": 10})  # fmt: skip
            anns.append({"id": len(anns) + 1, "image_id": len(images), "category_id": 1,
                         "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0})  # fmt: skip
    images.append({"id": 999, "file_name": "m.jpg", "width": 10, "height": 10,
                   "flickermine": {"video": "c.mp4", "frame": 7}})  # fmt: skip
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "p"}]}


def test_split_by_time_with_a_gap_and_mined_frames_in_train_only():
    from flickermine.dataset import split_images

    parts = split_images(_video_coco(), [("train", 0.6), ("test", 0.4)], by="time", gap=25)
    train, test = ({(i.get("video"), i.get("frame")) for i in parts[n]["images"]}
                   for n in ("train", "test"))  # fmt: skip
    for v in ("a.mp4", "b.mp4"):
        last_train = max(f for vv, f in train if vv == v)
        first_test = min(f for vv, f in test if vv == v)
        assert last_train == 60 and first_test == 86  # frames 61..85 left out
    assert 999 in {i["id"] for i in parts["train"]["images"]}
    assert 999 not in {i["id"] for i in parts["test"]["images"]}


def test_split_by_video_keeps_each_video_in_one_part():
    from flickermine.dataset import split_images

    parts = split_images(_video_coco(), [("train", 0.5), ("test", 0.5)], by="video", seed=3)
    videos = {n: {i.get("video") for i in p["images"] if "flickermine" not in i}
              for n, p in parts.items()}  # fmt: skip
    assert videos["train"].isdisjoint(videos["test"])
    assert videos["train"] | videos["test"] == {"a.mp4", "b.mp4"}
