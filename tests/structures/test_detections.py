from __future__ import annotations

import numpy as np
import pytest

from flickermine.errors import InvalidDetectionsError
from flickermine.structures import VideoDetections


def make(xyxy, frame=None, score=None, n=None):
    xyxy = np.asarray(xyxy, float).reshape(-1, 4)
    frame = np.zeros(len(xyxy), int) if frame is None else frame
    score = np.full(len(xyxy), 0.9) if score is None else score
    return VideoDetections.from_rows(frame=frame, xyxy=xyxy, score=score, num_frames=n)


def test_rows_are_grouped_by_frame_keeping_order():
    d = make([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], frame=[3, 1, 3], n=5)
    assert d.counts().tolist() == [0, 1, 0, 2, 0]
    assert d.xyxy[d.frame_slice(3)][:, 0].tolist() == [0, 2]
    assert d.frame.tolist() == [1, 3, 3]


def test_select_keeps_frame_structure():
    d = make([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], frame=[0, 1, 2], score=[0.1, 0.9, 0.2])
    kept = d.select(d.score > 0.15)
    assert kept.num_frames == 3
    assert kept.counts().tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("nan box", dict(xyxy=[[0, 0, np.nan, 1]]), "box 0 of frame 1"),
        ("inf score", dict(xyxy=[[0, 0, 1, 1]], score=[np.inf]), "non-finite"),
        ("negative width", dict(xyxy=[[5, 0, 1, 1]]), "negative width"),
        ("bad shape", dict(xyxy=[[0, 0, 1]]), "expected shape"),
        (
            "frame beyond video",
            dict(xyxy=[[0, 0, 1, 1]], frame=[4], n=3),
            r"frame count given \(num_frames\) is 3",
        ),
    ],
)
def test_invalid_detections_name_what_is_wrong(name, kwargs, message):
    xyxy = np.asarray(kwargs.pop("xyxy"), float)
    with pytest.raises(InvalidDetectionsError, match=message):
        if xyxy.shape[-1] != 4:
            VideoDetections.from_rows(frame=[0], xyxy=xyxy, score=[0.9])
        else:
            make(xyxy, **kwargs)


def test_error_names_frame_and_box_index():
    xyxy = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, -1, 1]]
    with pytest.raises(InvalidDetectionsError, match=r"box 1 of frame 3 \(1-based; 2 0-based\)"):
        make(xyxy, frame=[0, 2, 2])


def test_with_num_frames_extends_and_refuses_to_drop_boxes():
    d = make([[0, 0, 1, 1]], frame=[2])
    assert d.with_num_frames(6).counts().tolist() == [0, 0, 1, 0, 0, 0]
    with pytest.raises(InvalidDetectionsError, match="video has 2 frames"):
        d.with_num_frames(2)


def test_empty():
    d = VideoDetections.empty(4)
    assert len(d) == 0 and d.num_frames == 4 and d.counts().sum() == 0
