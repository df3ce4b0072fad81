"""Running a detector over every frame of a video."""

from __future__ import annotations

from flickermine.detect.hog import HogPeopleDetector
from flickermine.detect.run import detect_video

__all__ = ["HogPeopleDetector", "detect_video"]
