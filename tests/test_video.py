from __future__ import annotations

import numpy as np
import pytest

from flickermine.errors import VideoError
from flickermine.video import VideoReader

from factories import write_video


def numbered_frames(n: int) -> list[np.ndarray]:
    """Frame t is a flat grey of level 10 * t: its number can be read back from pixels."""
    return [np.full((48, 64, 3), 10 * t, np.uint8) for t in range(n)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_reader_knows_count_fps_size_and_numbers_frames_in_order(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", numbered_frames(12), fps=12)
    reader = VideoReader(path)
    assert (reader.num_frames, reader.width, reader.height) == (12, 64, 48)
    assert reader.fps == pytest.approx(12)
    levels = [(f.index, round(float(f.bgr.mean()) / 10)) for f in reader]
    assert levels == [(t, t) for t in range(12)]


def test_gray_agrees_with_bgr(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), np.uint8), (0, 0), 2)]
    frame = next(iter(VideoReader(write_video(tmp_path / "v.mp4", frames))))
    gray_from_luma = frame.gray.astype(float)
    gray_from_bgr = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2GRAY).astype(float)
    assert gray_from_luma.shape == (48, 64)
    assert np.corrcoef(gray_from_luma.ravel(), gray_from_bgr.ravel())[0, 1] > 0.99


def test_unreadable_video_names_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video at all" * 50)
    with pytest.raises(VideoError, match="broken.mp4"):
        VideoReader(bad)
    with pytest.raises(VideoError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")
