"""Named scenarios for the hard-positive miner (docs/method.md §4), on real encoded videos."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from flickermine.errors import ConfigError
from flickermine.mine import HardPositiveParams, MinerParams, iter_flickers, mine_video
from flickermine.structures import iou_matrix
from flickermine.video import VideoReader

from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

N = 24
HP = HardPositiveParams()


def walker(seed=7, x0=60, y=80, vx=3, frames=range(N)) -> Sprite:
    return Sprite(texture(seed, 64, 48), {t: (x0 + vx * t, y) for t in frames})


def hard_positives(tmp_path, frames, dets, hp=HP) -> dict[int, list]:
    video = write_video(tmp_path / "v.mp4", frames)
    reader = VideoReader(video)
    found: dict[int, list] = {}
    for fv in iter_flickers(
        reader, dets, MinerParams(), reader.width, reader.height, hard_positives=hp
    ):
        if fv.hard_positives:
            found[fv.index] = list(fv.hard_positives)
    return found


def true_iou(sprite: Sprite, t: int, box) -> float:
    return float(iou_matrix(np.array([sprite.box(t)]), np.asarray(box)[None])[0, 0])


@pytest.mark.parametrize(
    ("name", "missed"), [("one-frame miss", [10]), ("three-frame miss", [9, 10, 11])]
)
def test_short_miss_is_a_hard_positive_at_the_right_place(tmp_path, name, missed):
    a = walker()
    rows = sprite_rows(a, [t for t in range(N) if t not in missed])
    found = hard_positives(tmp_path, render_frames(N, sprites=[a]), detections(rows, N))
    assert sorted(found) == missed, name
    for t in missed:
        (hp,) = found[t]
        assert true_iou(a, t, hp.box) > 0.8
        assert hp.gap == len(missed) and hp.support_before == missed[0]
        assert hp.support_after == N - missed[-1] - 1 and hp.similarity > 0.9


def test_gap_longer_than_max_gap_is_not_mined(tmp_path):
    a = walker()
    short = HardPositiveParams(max_gap=4)
    missed = range(8, 8 + short.max_gap + 1)
    rows = sprite_rows(a, [t for t in range(N) if t not in missed])
    frames = render_frames(N, sprites=[a])
    assert hard_positives(tmp_path, frames, detections(rows, N), short) == {}
    longer = HardPositiveParams(max_gap=short.max_gap + 1)
    found = hard_positives(tmp_path, render_frames(N, sprites=[a]), detections(rows, N), longer)
    assert sorted(found) == list(missed)


def test_object_that_leaves_the_image_is_not_mined(tmp_path):
    # Moves right 8 px/frame, leaves the 320 px image at frame 12 and comes back moving left.
    xs = {t: 180 + 8 * t if t <= 16 else 180 + 8 * 16 - 8 * (t - 16) for t in range(N)}
    a = Sprite(texture(7, 64, 48), {t: (x, 80) for t, x in xs.items()})
    inside = [t for t in range(N) if xs[t] + 48 <= 320]
    rows = [(t, *a.box(t), 0.9) for t in inside]
    assert len(inside) < N  # it really left
    assert hard_positives(tmp_path, render_frames(N, sprites=[a]), detections(rows, N)) == {}


def test_two_objects_crossing(tmp_path):
    a = walker(seed=7, x0=40, y=50, vx=8)
    b = Sprite(texture(99, 64, 48), {t: (230 - 8 * t, 100) for t in range(N)})
    missed = [11, 12]  # a is missed while b passes in front of it
    rows = sorted(
        sprite_rows(a, [t for t in range(N) if t not in missed]) + sprite_rows(b, range(N))
    )
    frames = render_frames(N, sprites=[a, b])
    found = hard_positives(tmp_path, frames, detections(rows, N))
    assert sorted(found) == missed
    for t in missed:
        (hp,) = found[t]
        assert true_iou(a, t, hp.box) > 0.6 > true_iou(b, t, hp.box)


def test_gap_already_covered_by_a_weak_detection_is_not_mined(tmp_path):
    a = walker()
    rows = [*sprite_rows(a, [t for t in range(N) if t != 10]), (10, *a.box(10), 0.4)]
    found = hard_positives(tmp_path, render_frames(N, sprites=[a]), detections(rows, N))
    assert found == {}


def test_scene_cut_does_not_link_different_objects(tmp_path):
    a = walker(seed=7, frames=range(10))
    c = walker(seed=55, frames=range(10, N))  # another object where a was heading
    missed = [10, 11]
    rows = sprite_rows(a, range(10)) + sprite_rows(c, range(12, N))
    frames = render_frames(N, sprites=[a, c], cut_at=10)
    assert hard_positives(tmp_path, frames, detections(rows, N)) == {}
    # Control: the same detections without the cut and with one object are linked.
    same = walker(seed=7)
    rows = sprite_rows(same, [t for t in range(N) if t not in missed])
    assert sorted(hard_positives(tmp_path, render_frames(N, sprites=[same]),
                                 detections(rows, N))) == missed  # fmt: skip


def test_outputs_carry_hard_positives(tmp_path):
    a = walker()
    rows = sprite_rows(a, [t for t in range(N) if t != 10])
    video = write_video(tmp_path / "walk.mp4", render_frames(N, sprites=[a]))
    s = mine_video(video, detections(rows, N), tmp_path / "out", hard_positives=HP)
    assert s["hard_positives"] == 1 and s["frames_written"] == 1
    assert s["params"]["hard_positives"] == HP.to_dict()
    table = pq.read_table(tmp_path / "out" / "walk.verdicts.parquet").to_pylist()
    (hp,) = [r for r in table if r["verdict"] == "hard_positive"]
    assert hp["frame"] == 10 and hp["gap"] == 1 and hp["support_before"] == 10
    assert hp["similarity"] > 0.9 and hp["reason"] == "missed for 1 frame(s) between t-1 and t+1"
    lines = (tmp_path / "out" / "walk.txt").read_text().splitlines()
    assert lines[:2] == ["walk/frame11.jpg", "1"] and lines[2].endswith(" 1")
    import cv2

    vis = cv2.imread(str(tmp_path / "out" / "visualizations" / "walk" / "frame11.jpg"))
    x1 = round(hp["x1"])
    b, _, r = vis[100, x1].astype(int)  # left edge of the box: drawn blue
    assert b > 180 and r < 80


def test_bad_hard_positive_parameters():
    with pytest.raises(ConfigError, match="max_gap"):
        HardPositiveParams(max_gap=0)
    with pytest.raises(ConfigError, match="cover_iou"):
        HardPositiveParams(cover_iou=1.5)
    with pytest.raises(ConfigError, match=r"scene_size: expected a value in \[0, 1\]"):
        HardPositiveParams(scene_size=-0.1)
    # The miner holds 2 * span + 1 decoded frames: a huge span would exhaust memory.
    from flickermine.mine import MinerParams
    from flickermine.mine.params import MAX_SPAN

    assert HardPositiveParams(max_gap=MAX_SPAN).max_gap == MAX_SPAN
    with pytest.raises(ConfigError, match=f"max_gap: at most {MAX_SPAN} frames"):
        HardPositiveParams(max_gap=MAX_SPAN + 1)
    with pytest.raises(ConfigError, match=f"window: at most {MAX_SPAN} frames"):
        MinerParams(window=100_000)
    with pytest.raises(ConfigError, match=r"confident_score \(0.5\) must be above score_thr"):
        MinerParams(confident_score=0.5)


def test_a_static_false_box_that_blinks_is_not_bridged(tmp_path):
    """A box on the background, detected in runs of three frames with two-frame gaps: its
    gaps look like misses (same picture on both sides, found again in the gap), but nothing
    moves across them."""
    box = (150.0, 60.0, 198.0, 124.0)
    on = [t for t in range(N) if t % 5 < 3]
    rows = [(t, *box, 0.9) for t in on]
    frames = render_frames(N)
    assert hard_positives(tmp_path, frames, detections(rows, N)) == {}
    still = HardPositiveParams(min_motion=0.0)
    found = hard_positives(tmp_path, frames, detections(rows, N), still)
    assert found and all(t not in on for t in found)


def test_a_jittering_static_false_box_that_blinks_is_not_bridged(tmp_path):
    """The same blinking box as a real detector reports it, a few pixels off each time: the
    ends of two of its runs can be far enough apart to look like motion, their averages are
    not. A walker moving 2 px a frame, missed as often, is still bridged."""
    rng = np.random.default_rng(0)
    box = np.array([150.0, 60.0, 198.0, 124.0])
    on = [t for t in range(N) if t % 5 < 3]
    rows = [(t, *(box + rng.normal(0, 1.5, 4)), 0.9) for t in on]
    frames = render_frames(N)
    assert hard_positives(tmp_path, frames, detections(rows, N)) == {}
    a = walker(vx=2)
    walking = [(t, *(np.array(a.box(t), float) + rng.normal(0, 1.5, 4)), 0.9) for t in on]
    found = hard_positives(tmp_path, render_frames(N, sprites=[a]), detections(walking, N))
    assert sorted(found) == [t for t in range(3, N - 2) if t not in on]


def test_an_object_standing_still_is_bridged_only_with_still_support(tmp_path):
    """A standing object detected steadily for ten frames, missed for three, then detected
    again: not moving, it is given up by default; with still_support 8 it is mined, while the
    blinking static box (runs of three) still is not."""
    rng = np.random.default_rng(1)
    a = walker(vx=0)
    missed = [10, 11, 12]
    rows = [(t, *(np.array(a.box(t), float) + rng.normal(0, 1.0, 4)), 0.9)
            for t in range(N) if t not in missed]  # fmt: skip
    frames = render_frames(N, sprites=[a])
    assert hard_positives(tmp_path, frames, detections(rows, N)) == {}
    steady = HardPositiveParams(still_support=8)
    found = hard_positives(tmp_path, frames, detections(rows, N), steady)
    assert sorted(found) == missed
    assert all(true_iou(a, t, hp.box) > 0.8 for t in missed for hp in found[t])
    blink = [(t, 150.0, 60.0, 198.0, 124.0, 0.9) for t in range(N) if t % 5 < 3]
    assert hard_positives(tmp_path, render_frames(N), detections(blink, N), steady) == {}
    with pytest.raises(ConfigError, match="still_support: expected an integer >= 0"):
        HardPositiveParams(still_support=-1)
