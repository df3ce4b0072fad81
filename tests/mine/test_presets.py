"""The rules beyond the reference's: hysteresis, the size rule, presets and --config."""

from __future__ import annotations

import numpy as np
import pytest

from flickermine.cli.main import main
from flickermine.errors import ConfigError
from flickermine.io import save_detections
from flickermine.mine import HardPositiveParams, MinerParams, iter_flickers
from flickermine.mine.flicker import Support
from flickermine.mine.outputs import reason
from flickermine.mine.params import PRESETS, read_params_file
from flickermine.mine.scene import fit_sizes
from flickermine.video import Frame, VideoReader

from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

N = 15
T = 7


def walker(x0: int = 100, seed: int = 7) -> Sprite:
    return Sprite(texture(seed, 64, 48), {t: (x0 + 2 * t, 80) for t in range(N)})


def verdicts(tmp_path, frames, dets, params, hard_positives=None):
    video = write_video(tmp_path / "v.mp4", frames)
    reader = VideoReader(video)
    out = {}
    for fv in iter_flickers(reader, dets, params, reader.width, reader.height,
                            hard_positives=hard_positives):  # fmt: skip
        out[fv.index] = fv
    return out


def test_seed_flags_an_object_whose_neighbours_score_just_below_the_threshold(tmp_path):
    """The reference rule: neighbours at 0.7 do not support a candidate at 0.9 (threshold 0.8);
    with hysteresis (support_score 0.6) they do."""
    a = walker()
    rows = [(t, *a.box(t), 0.9 if t == T else 0.7) for t in range(N)]
    frames = render_frames(N, sprites=[a])
    seed = verdicts(tmp_path, frames, detections(rows, N), MinerParams())
    assert bool(seed[T].hard_negative[0]) is True
    held = verdicts(tmp_path, frames, detections(rows, N), MinerParams(support_score=0.6))
    assert bool(held[T].hard_negative[0]) is False
    assert held[T].before[0] == Support.OVERLAP and held[T].before_offset[0] == -1
    # Boxes below the support score play no part: a flicker stays a flicker.
    low = [(t, *a.box(t), 0.9 if t == T else 0.5) for t in range(N)]
    still = verdicts(tmp_path, frames, detections(low, N), MinerParams(support_score=0.6))
    assert bool(still[T].hard_negative[0]) is True


@pytest.mark.parametrize("sparse", [False, True])
def test_motion_support_keeps_a_walker_detected_once_out_of_the_hard_negatives(tmp_path, sparse):
    """A textured object walking 3 px a frame, detected in frame T only, and a false box on the
    static background, detected in frame T only: by the reference rule both are flickers. With
    motion_support the walker's picture is found moving in the frames around it, so it is
    supported; the false box's is found where it was, so it stays a hard negative. With
    ``sparse``, frames come with only the images the miner said it would read."""
    a = Sprite(texture(7, 64, 48), {t: (60 + 3 * t, 80) for t in range(N)})
    false_box = (200.0, 120.0, 250.0, 190.0)
    rows = [(T, *a.box(T), 0.9), (T, *false_box, 0.9)]
    video = write_video(tmp_path / "v.mp4", render_frames(N, sprites=[a]))
    dets = detections(rows, N)
    reader = VideoReader(video)

    def frames(needs):
        for frame in VideoReader(video).frames():
            if sparse and not (needs.gray[frame.index] or needs.bgr[frame.index]):
                yield Frame(frame.index)
            else:
                yield frame

    def judged(params):
        (fv,) = [fv for fv in iter_flickers(frames, dets, params, reader.width, reader.height)
                 if fv.index == T]  # fmt: skip
        return fv

    seed = judged(MinerParams(border_margin=5))
    assert seed.hard_negative.tolist() == [True, True]
    moving = judged(MinerParams(border_margin=5, motion_support=0.02))
    assert moving.hard_negative.tolist() == [False, True]
    assert moving.before[0] == Support.MOTION and moving.after[0] == Support.MOTION
    assert (moving.before_offset[0], moving.after_offset[0]) == (-2, 2)
    assert reason(0, int(moving.before[0]), -2, int(moving.after[0]), 2).startswith("supported")
    # Faster than the walker can be found moving: the rule asks for more than it moves.
    too_slow = judged(MinerParams(border_margin=5, motion_support=0.2))
    assert too_slow.hard_negative.tolist() == [True, True]


def test_motion_support_measures_motion_against_the_scene_when_the_camera_pans(tmp_path):
    """The camera pans 3 px a frame: a false box on the background, detected once, moves with
    the background and stays a hard negative; a walker moving 3 px a frame the other way across
    the picture, detected once, moves against the scene and is supported."""
    width, height, pan = 320, 240, 3
    background = texture(5, height, width + pan * N, blur=3)
    walker_patch = texture(7, 64, 48)
    frames = []
    for t in range(N):
        frame = background[:, pan * t : pan * t + width].copy()
        x = 60 + 3 * t
        frame[80:144, x : x + 48] = walker_patch
        frames.append(frame)
    walker = (60.0 + 3 * T, 80.0, 60.0 + 3 * T + 48, 144.0)
    false_box = (200.0, 120.0, 250.0, 190.0)
    video = write_video(tmp_path / "pan.mp4", frames)
    reader = VideoReader(video)
    dets = detections([(T, *walker, 0.9), (T, *false_box, 0.9)], N)
    params = MinerParams(border_margin=5, motion_support=0.02)
    (fv,) = [fv for fv in iter_flickers(reader, dets, params, width, height) if fv.index == T]
    assert fv.hard_negative.tolist() == [False, True]
    assert fv.before[0] == Support.MOTION


def test_motion_support_is_not_fooled_by_objects_passing_a_still_false_box(tmp_path):
    """A still camera, a false box detected once, and two undetected objects passing right
    beside it the same way (left of it and below it): the scene's estimate moves with them,
    the false box does not move at all, and stays a hard negative."""
    false_box = (150.0, 60.0, 198.0, 124.0)
    left = Sprite(texture(8, 64, 48), {t: (102 + 3 * (t - T), 60) for t in range(N)})
    below = Sprite(texture(9, 64, 48), {t: (150 + 3 * (t - T), 124) for t in range(N)})
    video = write_video(tmp_path / "v.mp4", render_frames(N, sprites=[left, below]))
    reader = VideoReader(video)
    dets = detections([(T, *false_box, 0.9)], N)
    params = MinerParams(border_margin=5, motion_support=0.02)
    (fv,) = [fv for fv in iter_flickers(reader, dets, params, 320, 240) if fv.index == T]
    assert fv.hard_negative.tolist() == [True]


def _scene_rows(n_people: int = 6, frames: int = N, tall_at: int | None = T):
    """Boxes of people whose height grows with their bottom edge (a ground plane), plus one box
    twice as tall as the scene's at its position in frame ``tall_at``."""
    rows = []
    for t in range(frames):
        for k in range(n_people):
            bottom = 120.0 + 15 * k
            height = 0.5 * bottom - 20  # 40 .. 77 px
            x = 60.0 + 45 * k + t
            rows.append((t, x, bottom - height, x + height / 2.5, bottom, 0.9))
    if tall_at is not None:
        bottom, height = 200.0, 2 * (0.5 * 200 - 20)
        rows.append((tall_at, 200.0, bottom - height, 200.0 + 60, bottom, 0.85))
    return rows


def test_a_box_twice_the_scenes_height_is_a_hard_negative_with_its_reason(tmp_path):
    rows = sorted(_scene_rows())
    dets = detections(rows, N)
    frames = render_frames(N, width=360, height=260)
    params = MinerParams(size_outlier=4, size_fit_min_boxes=20, border_margin=5, min_area=100)
    v = verdicts(tmp_path, frames, dets, params)
    fv = v[T]
    tall = int(np.argmax(fv.xyxy[:, 3] - fv.xyxy[:, 1]))
    # Supported in time (the same tall box is nowhere else, but people overlap it?) no matter:
    assert bool(fv.size_outlier[tall]) and bool(fv.hard_negative[tall])
    assert fv.size_ratio[tall] == pytest.approx(2.0, rel=0.05)
    others = np.delete(np.arange(len(fv.score)), tall)
    assert not fv.hard_negative[others].any()
    # The seed's rules: no size rule at all.
    assert (
        verdicts(tmp_path, frames, dets, MinerParams(border_margin=5, min_area=100))[T].size_outlier
        is None
    )


def test_size_rule_switches_off_where_sizes_do_not_follow_the_scene():
    rng = np.random.default_rng(0)
    bottom = rng.uniform(100, 250, 200)
    height = rng.uniform(20, 150, 200)  # no relation to the bottom edge
    xyxy = np.stack([np.zeros(200), bottom - height, np.full(200, 30.0), bottom], axis=1)
    fit = fit_sizes(xyxy, np.ones(200, bool), 4.0, 0.25, 50)
    assert not fit.active and not fit.outlier.any() and fit.spread > 0.25
    few = fit_sizes(xyxy[:10], np.ones(10, bool), 4.0, 0.25, 50)
    assert not few.active


def test_size_rule_drops_hard_positives_bridged_by_loose_boxes(tmp_path):
    """A gap between two boxes twice the scene's height is not a missed object."""
    rows = [r for r in _scene_rows(tall_at=None)]
    # A loose (twice too tall) track that is missed in frame T.
    for t in range(N):
        if t != T:
            rows.append((t, 250.0 + t, 200.0 - 160, 250.0 + t + 60, 200.0, 0.9))
    dets = detections(sorted(rows), N)
    frames = render_frames(N, width=360, height=260)
    hp = HardPositiveParams(min_similarity=0.0)
    base = dict(border_margin=5, min_area=100, size_fit_min_boxes=20)
    without = verdicts(tmp_path, frames, dets, MinerParams(**base), hp)
    assert len(without[T].hard_positives) == 1
    with_rule = verdicts(tmp_path, frames, dets, MinerParams(size_outlier=4, **base), hp)
    assert T not in with_rule or not with_rule[T].hard_positives


def _missed_track(rows, ratio: float, bottom: float = 240.0):
    """Add a person ``ratio`` times the scene's height at ``bottom``, missed in frame T (away
    from the others, so that none of them covers the gap)."""
    height = ratio * (0.5 * bottom - 20)
    for t in range(N):
        if t != T:
            rows.append((t, 10.0 + t, bottom - height, 10.0 + t + height / 2.5, bottom, 0.9))
    return sorted(rows)


@pytest.mark.parametrize(
    ("name", "ratio", "scene_size", "height_ratio"),
    [
        ("loose track: the scene's height", 1.3, 0.1, 1.0),
        ("within the scene's variation: kept", 1.1, 0.1, 1.1),
        ("scene_size 0: kept", 1.3, 0.0, 1.3),
    ],
)
def test_hard_positive_between_loose_boxes_takes_the_scenes_height(
    tmp_path, name, ratio, scene_size, height_ratio
):
    """A track of boxes 1.3 times the scene's height (loose, yet within the size rule's limit)
    missed in one frame: the hard positive gets the height the scene expects at its bottom edge,
    bottom edge and horizontal centre kept."""
    dets = detections(_missed_track(_scene_rows(tall_at=None), ratio), N)
    frames = render_frames(N, width=360, height=260)
    hp = HardPositiveParams(min_similarity=0.0, scene_size=scene_size)
    params = MinerParams(size_outlier=4, border_margin=5, min_area=100, size_fit_min_boxes=20)
    (found,) = verdicts(tmp_path, frames, dets, params, hp)[T].hard_positives
    x1, y1, x2, y2 = found.box
    expected = 0.5 * 240 - 20
    assert (y2 - y1) / expected == pytest.approx(height_ratio, rel=0.02), name
    assert y2 == pytest.approx(240.0, abs=1.0)
    assert (x2 - x1) / (y2 - y1) == pytest.approx(1 / 2.5, rel=0.05)  # the aspect is kept


def test_hard_positives_keep_their_size_where_the_scene_has_many_sizes(tmp_path):
    """People whose heights vary by about 15 % around the ground plane's: the size rule is
    active, but its spread is above scene_size, so even a box 1.5 times the fit keeps its
    height."""
    rng = np.random.default_rng(1)
    rows = []
    for t in range(N):
        for k in range(10):
            bottom = 120.0 + 13 * k
            height = (0.5 * bottom - 20) * float(np.exp(rng.normal(0, 0.15)))
            x = 100.0 + 25 * k + t
            rows.append((t, x, bottom - height, x + height / 2.5, bottom, 0.9))
    dets = detections(_missed_track(rows, 1.5), N)
    fit = fit_sizes(dets.xyxy, np.ones(len(dets), bool), 4.0, 0.25, 20)
    assert fit.active and 0.1 < fit.spread < 0.25
    frames = render_frames(N, width=360, height=260)
    hp = HardPositiveParams(min_similarity=0.0)
    params = MinerParams(size_outlier=4, border_margin=5, min_area=100, size_fit_min_boxes=20)
    (found,) = verdicts(tmp_path, frames, dets, params, hp)[T].hard_positives
    assert (found.box[3] - found.box[1]) / (0.5 * 240 - 20) == pytest.approx(1.5, rel=0.02)
    # Allowed any spread, the miner's own fit (active here) would have set the height.
    loose = HardPositiveParams(min_similarity=0.0, scene_size=1.0)
    (snapped,) = verdicts(tmp_path, frames, dets, params, loose)[T].hard_positives
    assert (snapped.box[3] - snapped.box[1]) / (0.5 * 240 - 20) < 1.2


def test_presets_and_their_parameters():
    assert MinerParams.preset("seed") == MinerParams()
    recall = MinerParams.preset("recall", window=3)
    assert recall.window == 3 and recall.size_outlier == PRESETS["recall"]["size_outlier"]
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        MinerParams.preset("fast")
    with pytest.raises(ConfigError, match="support_score: expected a value in"):
        MinerParams(support_score=0.9)


def test_config_file_and_flags_override_the_preset(tmp_path, capsys):
    import json

    a = walker()
    video = write_video(tmp_path / "v.mp4", render_frames(N, sprites=[a]))
    save_detections(detections(sprite_rows(a, range(N)), N), tmp_path / "v.parquet")
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("miner:\n  window: 3\n  support_score: 0.4\n")
    argv = ["mine", str(video), "--detections", str(tmp_path / "v.parquet"), "-q",
            "--preset", "recall", "--config", str(cfg), "--support-score", "0.45"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    params = json.loads((tmp_path / "o" / "v.json").read_text())["params"]
    assert params["window"] == 3 and params["support_score"] == 0.45
    assert params["size_outlier"] == PRESETS["recall"]["size_outlier"]
    cfg.write_text("windw: 3\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown mining parameter\(s\): windw"):
        read_params_file(cfg)
    assert main([*argv, "--out", str(tmp_path / "o2")]) == 2
    assert "windw" in capsys.readouterr().err
    cfg.write_text("window: 0\n")
    assert main([*argv, "--out", str(tmp_path / "o3")]) == 2
    assert "mine.yaml: window: expected an integer >= 1" in capsys.readouterr().err


def test_size_rule_needs_most_boxes_to_fit():
    """Objects of two fixed sizes moving all over the image: a fit that 30 % of the boxes
    miss is no ground plane, and no rule."""
    rng = np.random.default_rng(1)
    rows = []
    for k, size in enumerate([60.0] * 150 + [100.0] * 60):
        bottom = rng.uniform(100, 280)
        rows.append([k, bottom - size, k + 30, bottom])
    fit = fit_sizes(np.array(rows, float), np.ones(len(rows), bool), 4.0, 0.25, 50)
    assert not fit.active and not fit.outlier.any()


def test_a_small_object_seen_small_in_every_frame_is_no_outlier(tmp_path):
    """A child among adults: half the expected height, but so in every frame."""
    rows = _scene_rows(tall_at=None)
    for t in range(N):
        rows.append((t, 300.0 + t, 200.0 - 40, 300.0 + t + 16, 200.0, 0.9))  # 40 px, expected 80
    dets = detections(sorted(rows), N)
    frames = render_frames(N, width=360, height=260)
    params = MinerParams(size_outlier=4, size_fit_min_boxes=20, border_margin=5, min_area=100)
    fv = verdicts(tmp_path, frames, dets, params)[T]
    small = int(np.argmin(np.abs(fv.xyxy[:, 0] - (300 + T))))
    assert fv.size_ratio[small] == pytest.approx(0.5, rel=0.05)
    assert not fv.size_outlier[small] and not fv.hard_negative[small]
