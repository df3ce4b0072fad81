"""Named scenarios for every rule of the flicker miner (docs/method.md §3), on real encoded
videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flickermine.mine import MinerParams, iter_flickers
from flickermine.mine.flicker import Support
from flickermine.structures import iou_matrix
from flickermine.video import VideoReader

from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

N = 15  # frames per scenario video
T = 7  # the frame under test (full window of 5 on each side)
FALSE_BOX = (180.0, 60.0, 228.0, 124.0)  # plain background, away from the object


def walker() -> Sprite:
    """A textured object moving 2 px per frame, detected as a real object."""
    return Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})


def judge(tmp_path: Path, frames, dets, params=None) -> dict[tuple[int, int], dict]:
    """Run the miner on a real video; verdicts keyed by (frame, det index in frame)."""
    video = write_video(tmp_path / "v.mp4", frames)
    reader = VideoReader(video)
    out = {}
    for fv in iter_flickers(reader, dets, params or MinerParams(), reader.width, reader.height):
        for i in range(len(fv.score)):
            out[(fv.index, int(fv.det_index[i]))] = {
                "hn": bool(fv.hard_negative[i]),
                "exclusion": int(fv.exclusion[i]),
                "before": (int(fv.before[i]), int(fv.before_offset[i])),
                "after": (int(fv.after[i]), int(fv.after_offset[i])),
            }
    return out


def false_box_index(rows, frame: int) -> int:
    """Position of the last row of ``frame`` among that frame's rows."""
    return sum(1 for r in rows if r[0] == frame) - 1


def test_persisting_object_is_supported_by_overlap(tmp_path):
    a = walker()
    rows = sprite_rows(a, range(N))
    v = judge(tmp_path, render_frames(N, sprites=[a]), detections(rows, N))
    assert v[(T, 0)]["hn"] is False
    assert v[(T, 0)]["before"] == (Support.OVERLAP, -1)
    assert v[(T, 0)]["after"][0] == Support.NOT_SEARCHED  # one supported side is enough


def test_isolated_false_box_is_a_hard_negative(tmp_path):
    a = walker()
    rows = [*sprite_rows(a, range(N)), (T, *FALSE_BOX, 0.9)]
    v = judge(tmp_path, render_frames(N, sprites=[a]), detections(rows, N))
    fb = v[(T, 1)]
    assert fb["hn"] is True
    assert fb["before"] == (Support.NONE, -5) and fb["after"] == (Support.NONE, 5)
    assert v[(T, 0)]["hn"] is False


def test_empty_neighbour_frames_neither_support_nor_refute(tmp_path):
    frames = render_frames(N)
    alone = judge(tmp_path, frames, detections([(T, *FALSE_BOX, 0.9)], N))
    assert alone[(T, 0)]["hn"] is True
    assert alone[(T, 0)]["before"] == (Support.NONE, 0)  # every neighbour was empty: skipped
    # The same box three frames earlier, with empty frames between, supports it.
    rows = [(T - 3, *FALSE_BOX, 0.9), (T, *FALSE_BOX, 0.9)]
    far = judge(tmp_path, frames, detections(rows, N))
    assert far[(T, 0)]["hn"] is False
    assert far[(T, 0)]["before"] == (Support.OVERLAP, -3)


def test_low_similarity_counts_as_support(tmp_path):
    a = walker()
    rows = [*sprite_rows(a, range(N)), (T, *FALSE_BOX, 0.9)]
    frames = render_frames(N, sprites=[a], cut_at=T + 1)  # scene cut right after T
    v = judge(tmp_path, frames, detections(rows, N))
    fb = v[(T, 1)]
    assert fb["before"] == (Support.NONE, -5)
    assert fb["after"] == (Support.APPEARANCE, 1)
    assert fb["hn"] is False


def test_support_through_tracked_box_when_object_moved_too_far(tmp_path):
    fast = Sprite(texture(3, 48, 40), {t: (55 + 45 * t, 90) for t in range(N)})
    rows = sprite_rows(fast, range(N))
    dets = detections(rows, N)
    assert iou_matrix(np.array([fast.box(T)]), np.array([fast.box(T - 1)]))[0, 0] == 0
    v = judge(tmp_path, render_frames(N, 800, 240, [fast]), dets)
    assert v[(T, 0)]["before"] == (Support.OVERLAP, -1)
    assert v[(T, 0)]["hn"] is False
    # Without a search region the patch cannot follow the object: no overlap support at t-1.
    v0 = judge(tmp_path, render_frames(N, 800, 240, [fast]), dets, MinerParams(search_margin=0))
    assert v0[(T, 0)]["before"][0] != Support.OVERLAP or v0[(T, 0)]["before"][1] != -1


@pytest.mark.parametrize(
    ("name", "box", "score", "exclusion"),
    [
        ("near border", (20.0, 60.0, 68.0, 124.0), 0.9, 3),
        ("smaller than min_area", (180.0, 60.0, 210.0, 90.0), 0.9, 2),
        ("confident", FALSE_BOX, 0.99, 1),
        ("candidate", FALSE_BOX, 0.9, 0),
    ],
)
def test_exclusions_are_never_flagged(tmp_path, name, box, score, exclusion):
    a = walker()
    rows = [*sprite_rows(a, range(N)), (T, *box, score)]
    v = judge(tmp_path, render_frames(N, sprites=[a]), detections(rows, N))
    assert v[(T, 1)]["exclusion"] == exclusion, name
    assert v[(T, 1)]["hn"] is (exclusion == 0), name


@pytest.mark.parametrize(("support_score", "hard_negative"), [(0.5, True), (0.85, False)])
def test_score_threshold_applies_to_support(tmp_path, support_score, hard_negative):
    a = walker()
    rows = [*sprite_rows(a, range(N)), (T - 1, *FALSE_BOX, support_score), (T, *FALSE_BOX, 0.9)]
    v = judge(tmp_path, render_frames(N, sprites=[a]), detections(rows, N))
    assert v[(T, 1)]["hn"] is hard_negative
    # Boxes under the threshold are not judged at all.
    assert ((T - 1, 1) in v) is (support_score >= 0.8)


def test_frames_without_full_window_are_not_mined(tmp_path):
    a = walker()
    rows = [*sprite_rows(a, range(N)), (2, *FALSE_BOX, 0.9), (N - 2, *FALSE_BOX, 0.9)]
    v = judge(tmp_path, render_frames(N, sprites=[a]), detections(rows, N))
    assert sorted({f for f, _ in v}) == list(range(5, N - 5))


def test_boxes_partly_outside_the_image_are_clipped_not_a_crash(tmp_path):
    a = walker()
    rows = [*sprite_rows(a, range(N)), (T, 250.0, 150.0, 400.0, 300.0, 0.9)]
    params = MinerParams(border_margin=0)
    v = judge(tmp_path, render_frames(N, sprites=[a]), detections(rows, N), params)
    assert v[(T, 1)]["exclusion"] == 0  # a candidate: it was template-matched without error


def test_no_detections_gives_an_empty_result(tmp_path):
    from flickermine.structures import VideoDetections

    assert judge(tmp_path, render_frames(N), VideoDetections.empty(N)) == {}


@pytest.mark.parametrize("max_gap", [None, 4])
def test_memory_window_only_keeps_neighbouring_frames(tmp_path, max_gap):
    """The miner holds a bounded window of frames, with or without hard positives (weakrefs)."""
    import gc
    import weakref

    from flickermine.mine import HardPositiveParams

    a = walker()
    video = write_video(tmp_path / "v.mp4", render_frames(N, sprites=[a]))
    reader = VideoReader(video)
    refs: list[weakref.ref] = []

    def tracked():
        for frame in reader:
            refs.append(weakref.ref(frame))
            yield frame

    params = MinerParams(window=2)
    hp = HardPositiveParams(max_gap=max_gap) if max_gap else None
    reach = max(params.window, max_gap or 0)
    dets = detections(sprite_rows(a, [t for t in range(N) if t % 6]), N)  # misses: gaps to fill
    threads = 2
    verdicts = iter_flickers(
        tracked(), dets, params, reader.width, reader.height, hard_positives=hp, threads=threads
    )
    for _ in verdicts:
        gc.collect()
        alive = sum(r() is not None for r in refs)
        # The window, plus the frames of verdicts still queued (at most 2 * threads + 1).
        assert alive <= 2 * reach + 1 + 2 * threads + 1
    assert len(refs) == N
