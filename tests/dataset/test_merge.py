"""COCO editing: lossless round trip, merge of mined frames, atomic and safe writes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flickermine.cli.main import main
from flickermine.dataset import (
    CocoError,
    check_coco,
    load_coco,
    merge_files,
    read_mined,
    save_coco,
)
from flickermine.mine import HardPositiveParams, mine_video

from factories import (
    Sprite,
    detections,
    make_coco,
    render_frames,
    sprite_rows,
    texture,
    write_video,
)

N = 24


@pytest.fixture(scope="module")
def mined_dir(tmp_path_factory) -> Path:
    """Real mining output: a flicker at frame 9 (with a tiny box) and a one-frame miss at 16."""
    tmp = tmp_path_factory.mktemp("mined")
    a = Sprite(texture(7, 64, 48), {t: (60 + 3 * t, 80) for t in range(N)})
    rows = [
        *sprite_rows(a, [t for t in range(N) if t != 16]),
        (9, 200.0, 60.0, 248.0, 124.0, 0.9),  # flicker
        (9, 100.0, 170.0, 108.0, 230.0, 0.9),  # 8 px wide: dropped from the dataset
    ]
    video = write_video(tmp / "walk.mp4", render_frames(N, sprites=[a]))
    out = tmp / "out"
    mine_video(video, detections(sorted(rows), N), out, hard_positives=HardPositiveParams())
    return out


@pytest.fixture
def coco_file(tmp_path) -> Path:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(make_coco()))
    return path


def test_load_save_round_trip_is_lossless(coco_file, tmp_path):
    original = json.loads(coco_file.read_text())
    save_coco(load_coco(coco_file), tmp_path / "copy.json")
    again = json.loads((tmp_path / "copy.json").read_text())
    assert again == original
    assert json.dumps(again) == json.dumps(original)  # key order too


def test_merge_adds_mined_frames_as_spec_says(coco_file, mined_dir, tmp_path):
    original = json.loads(coco_file.read_text())
    report, _ = merge_files(
        coco_file, [mined_dir], tmp_path / "images", "dog", tmp_path / "new.json"
    )
    new = json.loads((tmp_path / "new.json").read_text())
    n_img, n_ann = len(original["images"]), len(original["annotations"])
    # Everything that existed survives untouched, in order; only additions at the end.
    assert new["images"][:n_img] == original["images"]
    assert new["annotations"][:n_ann] == original["annotations"]
    assert {k: v for k, v in new.items() if k not in ("images", "annotations")} == {
        k: v for k, v in original.items() if k not in ("images", "annotations")
    }
    added_imgs, added_anns = new["images"][n_img:], new["annotations"][n_ann:]
    assert report.images_added == len(added_imgs) == 2  # the flicker frame and the missed frame
    assert min(i["id"] for i in added_imgs) > max(i["id"] for i in original["images"])
    assert min(a["id"] for a in added_anns) > max(a["id"] for a in original["annotations"])
    by_frame = {i["flickermine"]["frame"]: i for i in added_imgs}
    assert sorted(by_frame) == [10, 17]  # 1-based frame numbers
    flicker = by_frame[10]
    assert flicker["flickermine"]["hard_negatives"] == [[200.0, 60.0, 48.0, 64.0]]
    assert flicker["flickermine"]["params"]["window"] == 5
    assert flicker["flickermine"]["video"].endswith("walk.mp4")
    assert (flicker["width"], flicker["height"]) == (320, 240)
    anns = {i["id"]: [a for a in added_anns if a["image_id"] == i["id"]] for i in added_imgs}
    (walker,) = anns[flicker["id"]]  # the 8 px box was dropped, the flicker is no annotation
    assert walker["category_id"] == 18 and walker["iscrowd"] == 0
    assert "segmentation" not in walker
    assert walker["area"] == pytest.approx(walker["bbox"][2] * walker["bbox"][3], abs=1e-3)
    (missed,) = anns[by_frame[17]["id"]]
    assert missed["flickermine"] == "hard_positive"
    assert report.boxes_too_small == 1
    for img in added_imgs:
        assert (tmp_path / "images" / img["file_name"]).is_file()
        assert img["file_name"].startswith("mined_walk_")


@pytest.mark.parametrize("link", [False, True])
def test_frames_are_copied_or_linked_and_no_temporaries_stay(coco_file, mined_dir, tmp_path, link):
    images = tmp_path / "images"
    merge_files(coco_file, [mined_dir], images, "dog", tmp_path / "new.json", link=link)
    placed = sorted(images.iterdir())
    assert len(placed) == 2 and all(not p.name.startswith(".") for p in placed)
    sources = {p.read_bytes(): p for p in (mined_dir / "frames").rglob("*.jpg")}
    for p in placed:
        source = sources[p.read_bytes()]  # the same picture as the mined frame
        assert p.samefile(source) == link  # a hard link to it, or a copy


def test_result_loads_in_pycocotools_and_faster_coco_eval(coco_file, mined_dir, tmp_path):
    merge_files(coco_file, [mined_dir], tmp_path / "images", 18, tmp_path / "new.json")
    from faster_coco_eval import COCO as FastCOCO
    from pycocotools.coco import COCO

    data = load_coco(tmp_path / "new.json")
    check_coco(data)
    for cls in (COCO, FastCOCO):
        api = cls(str(tmp_path / "new.json"))
        assert len(api.getImgIds()) == len(data["images"])
        assert len(api.getAnnIds(catIds=[18])) == sum(
            a["category_id"] == 18 for a in data["annotations"]
        )


def test_pure_negative_frames_kept_by_default_dropped_on_request(coco_file, tmp_path):
    """A frame whose only boxes are hard negatives is kept (a pure negative) unless the seed's
    --require-positive is asked for."""
    frames = tmp_path / "seed" / "video1"
    frames.mkdir(parents=True)
    import cv2

    for n in (5, 6):
        cv2.imwrite(str(frames / f"frame{n}.jpg"), np.zeros((48, 64, 3), np.uint8))
    txt = tmp_path / "seed" / "video1.txt"
    txt.write_text(
        "video1/frame5.jpg\n1\n10.0 10.0 30.0 30.0 0\n"
        "video1/frame6.jpg\n2\n10.0 10.0 30.0 30.0 0\n5.0 5.0 20.0 25.0 1\n"
    )
    report, _ = merge_files(coco_file, [txt], tmp_path / "img", "dog", tmp_path / "a.json")
    assert report.images_added == 2
    report, _ = merge_files(coco_file, [txt], tmp_path / "img2", "dog", tmp_path / "b.json",
                            require_positive=True)  # fmt: skip
    assert report.images_added == 1 and report.without_positive_dropped == 1
    added = load_coco(tmp_path / "b.json")["images"][-1]
    assert (added["width"], added["height"]) == (64, 48)  # read from the JPEG header


def test_merging_the_same_frames_twice_adds_nothing(coco_file, mined_dir, tmp_path, capsys):
    argv = ["dataset", "merge", str(coco_file), str(mined_dir), "--images", str(tmp_path / "i"),
            "--category", "dog"]  # fmt: skip
    assert main([*argv, "--in-place"]) == 0
    once = coco_file.read_text()
    assert main([*argv, "--in-place"]) == 0
    out = capsys.readouterr().out
    assert "2 mined frames were already in the dataset" in out
    assert coco_file.read_text() == once


def test_in_place_needs_the_flag_and_keeps_a_backup(coco_file, mined_dir, tmp_path, capsys):
    original = coco_file.read_text()
    argv = ["dataset", "merge", str(coco_file), str(mined_dir), "--images", str(tmp_path / "i"),
            "--category", "dog"]  # fmt: skip
    assert main([*argv, "--out", str(coco_file)]) == 2
    assert "pass --in-place" in capsys.readouterr().err
    assert main([*argv, "--in-place"]) == 0
    assert (tmp_path / "instances.json.bak").read_text() == original
    (tmp_path / "other.json").write_text("{}")
    assert main([*argv, "--out", str(tmp_path / "other.json")]) == 2  # no silent overwrite


def test_merge_killed_mid_write_leaves_the_input_valid(tmp_path, mined_dir):
    big = make_coco(n_images=60000, seed=1)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(big))
    original = path.read_bytes()
    code = (
        "import sys\nfrom flickermine.dataset import merge_files\n"
        "merge_files(sys.argv[1], [sys.argv[2]], sys.argv[3], 'dog', in_place=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(mined_dir),
                             str(tmp_path / "images")])  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if list(tmp_path.glob(".big.json.*.tmp")) or (tmp_path / "big.json.bak").exists():
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = load_coco(path)  # still a complete, valid file: the old one or the finished merge
    check_coco(data)
    assert path.read_bytes() == original or len(data["images"]) == len(big["images"]) + 2


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("duplicate image id", lambda c: c["images"].append(dict(c["images"][0])),
         "duplicate image id 1000"),
        ("annotation without image", lambda c: c["annotations"][0].update(image_id=5),
         "refers to unknown image 5"),
        ("undeclared category", lambda c: c["annotations"][0].update(category_id=99),
         "undeclared category 99"),
        ("negative bbox", lambda c: c["annotations"][0].update(bbox=[1, 1, -3, 4]),
         "invalid bbox"),
        ("duplicate annotation id", lambda c: c["annotations"].append(dict(c["annotations"][0])),
         "duplicate annotation id"),
        ("annotation not an object", lambda c: c["annotations"].append([1, 2]),
         r"an annotation has no valid id: \[1, 2\]"),
        ("image id a list", lambda c: c["annotations"][0].update(image_id=[1000]),
         r"refers to unknown image \[1000\]"),
        ("missing bbox", lambda c: c["annotations"][0].pop("bbox"), "missing or invalid bbox"),
        ("area not a number", lambda c: c["annotations"][0].update(area="big"),
         "invalid area 'big'"),
        ("iscrowd not 0 or 1", lambda c: c["annotations"][0].update(iscrowd={}),
         r"iscrowd \{\} \(0 or 1\)"),
        ("category name not text", lambda c: c["categories"][0].update(name=["dog"]),
         "has a name that is not text"),
    ],
)  # fmt: skip
def test_bad_annotation_files_name_file_and_id(tmp_path, mined_dir, name, edit, message):
    coco = make_coco(seed=3)
    edit(coco)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(CocoError, match=rf"bad\.json: .*{message}"):
        merge_files(path, [mined_dir], tmp_path / "i", "dog", tmp_path / "o.json")


def test_other_bad_inputs(coco_file, mined_dir, tmp_path):
    (tmp_path / "nj.json").write_text("{not json")
    with pytest.raises(CocoError, match=r"nj\.json: not valid JSON"):
        merge_files(tmp_path / "nj.json", [mined_dir], tmp_path / "i", "dog", tmp_path / "o.json")
    with pytest.raises(CocoError, match=r"no category 'cat'.*18:dog"):
        merge_files(coco_file, [mined_dir], tmp_path / "i", "cat", tmp_path / "o.json")
    txt = tmp_path / "v.txt"
    txt.write_text("v/frame3.jpg\n0\n")
    with pytest.raises(CocoError, match=r"mined frame missing on disk: .*frame3\.jpg"):
        merge_files(coco_file, [txt], tmp_path / "i", "dog", tmp_path / "o.json")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("v/frame3.jpg\n1\n10 20 nan 40 1\n", r"v\.txt:3: not a box"),
        ("v/frame3.jpg\n1\n10 20 inf 40 0\n", r"v\.txt:3: not a box"),
        ("v/frame3.jpg\n1\n10 20 -30 40 1\n", r"v\.txt:3: not a box"),
        ("v/frame3.jpg\n-2\n", r"v\.txt:2: expected the number of boxes"),
        ("v/frame3.jpg\n2\n10 20 30 40 1\n", r"v\.txt:4: expected 'x y w h flag'"),
    ],
)
def test_bad_seed_result_files_name_the_line(coco_file, tmp_path, lines, message):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "frame3.jpg").write_bytes(b"")  # present: only the boxes are wrong
    txt = tmp_path / "v.txt"
    txt.write_text(lines)
    with pytest.raises(CocoError, match=message):
        merge_files(coco_file, [txt], tmp_path / "i", "dog", tmp_path / "o.json")
    assert not (tmp_path / "o.json").exists()


def test_damaged_miner_outputs_are_refused_naming_the_file(coco_file, mined_dir, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(mined_dir, out)
    summary = out / "walk.json"
    verdicts = out / "walk.verdicts.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(verdicts)
    x1 = table.column("x1").to_numpy().copy()
    x1[0] = np.nan
    pq.write_table(table.set_column(table.schema.get_field_index("x1"), "x1", pa.array(x1)),
                   verdicts)  # fmt: skip
    with pytest.raises(CocoError, match=r"walk\.verdicts\.parquet: boxes with NaN"):
        merge_files(coco_file, [summary], tmp_path / "i", "dog", tmp_path / "o.json")
    verdicts.write_bytes(verdicts.read_bytes()[:200])
    with pytest.raises(CocoError, match=r"walk\.verdicts\.parquet: unreadable verdicts file"):
        merge_files(coco_file, [summary], tmp_path / "i", "dog", tmp_path / "o.json")
    summary.write_text("[1, 2]")
    with pytest.raises(CocoError, match=r"walk\.json: not a mining summary"):
        merge_files(coco_file, [summary], tmp_path / "i", "dog", tmp_path / "o.json")


def test_export_is_a_dataset_pycocotools_opens(mined_dir, tmp_path):
    from pycocotools.coco import COCO

    assert main(["dataset", "export", str(mined_dir), "--out", str(tmp_path / "ds"),
                 "--category", "thing"]) == 0  # fmt: skip
    api = COCO(str(tmp_path / "ds" / "annotations.json"))
    assert len(api.getImgIds()) == 2 and len(api.getAnnIds()) == 2
    for img in api.loadImgs(api.getImgIds()):
        assert (tmp_path / "ds" / "images" / img["file_name"]).is_file()
    assert len(read_mined(mined_dir)) == 2


def test_unmerge_gives_back_the_file_as_it_was(coco_file, mined_dir, tmp_path):
    original = json.loads(coco_file.read_text())
    merge_files(coco_file, [mined_dir], tmp_path / "images", "dog", tmp_path / "new.json")
    assert main(["dataset", "unmerge", str(tmp_path / "new.json"), "--out",
                 str(tmp_path / "back.json"), "-q"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "back.json").read_text()) == original
