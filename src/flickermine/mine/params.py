"""The miner's parameters: one place for each default, its seed name and its trade-off."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from flickermine.errors import ConfigError

#: The seed's command-line names (``get_hardNegative.py``) of each parameter.
SEED_NAMES: dict[str, str] = {
    "score_threshold": "validScore",
    "window": "alpha",
    "iou_threshold": "iouThr",
    "search_margin": "beta",
    "similarity_threshold": "validSimScore",
    "border_margin": "crossBoundary",
    "min_area": "smallBoxSize",
}

#: Longest ``window`` and ``max_gap``: the miner holds ``2 * max(window, max_gap) + 1``
#: decoded frames (250 frames is 10 s at 25 fps).
MAX_SPAN = 250


def _check_integer(name: str, value: float, low: int) -> None:
    if int(value) != value or value < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class MinerParams:
    """Parameters of the flicker (hard-negative) miner, docs/method.md §3. Defaults are the seed's.

    Attributes:
        score_threshold: detections scoring below it are ignored everywhere, as candidates and as
            support (seed ``validScore``, 0.8). Raising it mines only confident mistakes but lets
            weak true detections stop supporting real objects, so more of those get flagged.
        window: frames searched for support before and after (seed ``alpha``, 5). Larger windows
            tolerate longer detector drop-outs (fewer true objects flagged) but let an unrelated
            box further away in time rescue a flicker; frames closer than ``window`` to either end
            of the video are not mined. At most :data:`MAX_SPAN`.
        iou_threshold: IoU above which a neighbouring detection supports a box, compared with
            both the box itself and its tracked position (seed ``iouThr``, 0.2). Lower values
            accept looser support (fewer hard negatives, fewer false alarms).
        search_margin: pixels added on every side of the box to form the template-matching
            search region (seed ``beta``, 100). Larger margins follow faster motion but cost
            more matching time and may lock onto a look-alike.
        similarity_threshold: best normalised cross-correlation under which the object's
            appearance is judged to have changed (occlusion, cut, blur), which counts as support
            (seed ``validSimScore``, 0.5). Raising it makes the miner more cautious.
        border_margin: boxes closer than this many pixels to any image edge are never flagged
            (seed ``crossBoundary``, 50): objects entering or leaving the frame flicker
            legitimately.
        min_area: boxes smaller than this many square pixels are never flagged (seed
            ``smallBoxSize``, 1600 = 40x40): tiny boxes carry too little texture to track.
        confident_score: boxes scoring at or above it are never flagged (seed: 0.98, fixed).
        support_score: detections scoring at or above it support a candidate (hysteresis: a
            candidate needs ``score_threshold``, its support only this). ``None`` (the seed) uses
            ``score_threshold`` for both, so a real object detected just below the threshold in
            the neighbouring frames is flagged as a flicker; lowering it protects such objects
            (fewer, surer hard negatives) at the risk of letting a weak false box support a
            flicker. Boxes below it play no part at all.
        size_outlier: a candidate whose height is off the scene's fit by more than this many
            spreads is a hard negative even when it is supported in time (a loose or wrong-
            scale box; see :mod:`flickermine.mine.scene`). 0 (the seed) turns the rule off.
            Lowering it flags more boxes, and more real objects of unusual size.
        size_fit_spread: the size rule applies only to videos whose box heights fit their
            bottom edges within this spread (log ratio); a moving camera or objects of very
            different sizes give a larger spread and switch it off for that video.
        size_fit_min_boxes: the size rule needs at least this many boxes to fit on.
        motion_support: a candidate left without support whose own picture is found in the
            frames :data:`~flickermine.mine.flicker.MOTION_STEP` before and after it (template
            correlation at least ``similarity_threshold``), moved by at least this fraction of
            its height per frame (from where it was and against the scene around it, so that
            a panning camera does not count), is an object moving through the scene that the
            detector missed around it, not a flicker: it is supported (``Support.MOTION``). A
            false box on static background is found where it was, and stays a hard negative. 0
            (the seed) turns the rule off; on PETS09-S2L1 with HOG, ``recall``'s 0.02 keeps the
            boxes on walking people that HOG detects once in eleven frames out of the hard
            negatives (hard-negative precision 1.00 instead of 0.98); 0.01 is within the noise
            of the scene's estimate under a panning camera (synthetic, 3 px a frame: 12 of 17
            isolated false boxes still flagged, 16 at 0.02). Its cost: a false box on a moving
            object of another kind is no longer flagged.
    """

    score_threshold: float = 0.8
    window: int = 5
    iou_threshold: float = 0.2
    search_margin: int = 100
    similarity_threshold: float = 0.5
    border_margin: float = 50
    min_area: float = 1600
    confident_score: float = 0.98
    support_score: float | None = None
    size_outlier: float = 0.0
    size_fit_spread: float = 0.25
    size_fit_min_boxes: int = 50
    motion_support: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "support_score" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{f.name}: expected a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{f.name}: expected a finite number, got {value!r}")
        _check_integer("window", self.window, 1)
        _check_integer("search_margin", self.search_margin, 0)
        _check_integer("size_fit_min_boxes", self.size_fit_min_boxes, 3)
        if self.window > MAX_SPAN:
            raise ConfigError(
                f"window: at most {MAX_SPAN} frames (the miner holds 2 * window + 1 decoded "
                f"frames), got {self.window}"
            )
        for name in ("iou_threshold", "similarity_threshold", "motion_support"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        for name in ("border_margin", "min_area"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: expected a value >= 0, got {getattr(self, name)}")
        if self.support_score is not None and not 0 <= self.support_score <= self.score_threshold:
            raise ConfigError(
                f"support_score: expected a value in [0, score_threshold ({self.score_threshold})]"
                f", got {self.support_score}"
            )
        if self.size_outlier < 0 or self.size_fit_spread < 0:
            raise ConfigError("size_outlier and size_fit_spread: expected values >= 0")
        if self.confident_score <= self.score_threshold:
            raise ConfigError(
                f"confident_score ({self.confident_score}) must be above score_threshold "
                f"({self.score_threshold}): no detection could be a candidate"
            )
        object.__setattr__(self, "window", int(self.window))
        object.__setattr__(self, "size_fit_min_boxes", int(self.size_fit_min_boxes))
        object.__setattr__(self, "search_margin", int(self.search_margin))

    @property
    def support_threshold(self) -> float:
        """The score from which detections support a candidate."""
        return self.score_threshold if self.support_score is None else self.support_score

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for JSON and Parquet metadata)."""
        return asdict(self)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MinerParams:
        """The parameters of a named preset (see :data:`PRESETS`), with ``overrides``."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MinerParams:
        """Build from a dictionary, rejecting unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown miner parameter(s): {', '.join(unknown)}")
        return cls(**values)


#: Named settings of the miner. ``seed`` reproduces the reference implementation's verdicts;
#: ``precise`` adds hysteresis (support from boxes scoring 0.5 or more); ``recall`` takes
#: candidates from 0.5, support from 0.3, and adds the size rule (which also drops hard
#: positives bridged by boxes of the wrong size) and motion support. Figures for each on real
#: footage: README, "Mining presets".
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {},
    "precise": {"support_score": 0.5},
    "recall": {
        "score_threshold": 0.5,
        "support_score": 0.3,
        "size_outlier": 4.0,
        "motion_support": 0.02,
    },
}
#: The preset ``flickermine mine`` uses unless told otherwise.
DEFAULT_PRESET = "recall"


def read_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Mining parameters from a YAML file: a mapping of :class:`MinerParams` names (under a
    ``miner:`` key or at the top), checked against the known names.

    Raises:
        ConfigError: unreadable file, not a mapping, or unknown names (naming the file).
    """
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read the mining parameters: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("miner"), dict):
        data = data["miner"]
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of mining parameters")
    known = {f.name for f in fields(MinerParams)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"{p}: unknown mining parameter(s): {', '.join(unknown)}")
    return dict(data)


@dataclass(frozen=True)
class HardPositiveParams:
    """Parameters of the hard-positive (missed detection) miner, docs/method.md §4.

    A *track* is a run of valid detections in consecutive frames, each overlapping the previous
    one with IoU >= ``link_iou``. A track that ends, followed within ``max_gap`` frames by a track
    that starts where the first one was heading, is one object the detector missed in between.

    Attributes:
        max_gap: longest run of missed frames that is bridged (default 24). Longer gaps find
            more misses but link unrelated objects more often, and the miner holds
            ``2 * max_gap + 1`` frames. At most :data:`MAX_SPAN`.
        min_support: detections the track must have on each side of the gap (default 2).
            Higher values trust only well-established objects: fewer, surer hard positives.
        link_iou: IoU needed to chain detections of consecutive frames into a track, and between
            each side's box and the other side's box carried across the gap at constant velocity
            (default 0.3). Lower values bridge faster or more erratic motion, at the risk of
            linking two different objects.
        cover_iou: a gap frame whose detections (of any score, even below the score
            threshold) overlap the interpolated box with IoU >= this is not a miss (default 0.3).
        min_similarity: normalised cross-correlation required between the object's appearance on
            the two sides of the gap (rejects scene cuts and identity switches) and of the refined
            box in the gap frame (rejects occlusions and objects that left) (default 0.6).
        refine_margin: the refinement searches the interpolated box grown by this fraction of its
            larger side (at least 4 px) (default 0.25).
        min_track_score: mean score the boxes next to the gap (up to four on each side) must
            reach (default 0.6). A track of weak boxes is often a loose box or a false
            detection that comes and goes; raising it keeps surer hard positives, fewer of them
            (on PETS09-S2L1 with HOG and the other defaults: 105 at precision 0.87 at 0.6, 82
            at 0.94 at 0.7).
        min_motion: the object must move at least this fraction of its height per frame
            across the gap (default 0.005), measured between the mean centres of its boxes
            next to the gap (up to four on each side), which a detector's jitter barely moves.
            A false box on static background that blinks on and off looks alike on both sides
            and is found again in the gap, but does not move; raising it also refuses misses
            of objects standing still.
        still_support: bridge a gap of an object that does not move all the same when each
            side's track has at least this many boxes (default 0: never). A person standing
            still, detected steadily before and after a short miss, is then mined; a false box
            on static background that is detected as steadily (a sign, a post) is bridged too,
            which is why it is off by default (PETS09-S2L1, the small Faster R-CNN of
            ``examples/pets09`` on frames 325-599: 8 finds 4 hard positives, all right, instead
            of 1; HOG and the synthetic scenes unchanged).
        scene_size: where the scene's size fit (the size rule, docs/method.md §3.1) is active
            and its spread at most this (default 0.1: heights within about ±10 % of the fit,
            as people seen by a fixed camera are), a hard positive whose height is off the
            fit by more than two spreads takes the height the fit expects at its bottom edge,
            its width scaled alike; 0 never. The boxes on either side of a miss are often
            loose (the detector is losing the object) and the interpolated box inherits that;
            where objects of one kind have one size, the scene knows better. In scenes of
            objects of many sizes the fit is loose, and boxes are kept as they are.
    """

    max_gap: int = 24
    min_support: int = 2
    link_iou: float = 0.3
    cover_iou: float = 0.3
    min_similarity: float = 0.6
    refine_margin: float = 0.25
    min_track_score: float = 0.6
    min_motion: float = 0.005
    scene_size: float = 0.1
    still_support: int = 0

    def __post_init__(self) -> None:
        for name, least in (("max_gap", 1), ("min_support", 1), ("still_support", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{name}: expected an integer >= {least}, got {value!r}")
        if self.max_gap > MAX_SPAN:
            raise ConfigError(
                f"max_gap: at most {MAX_SPAN} frames (the miner holds 2 * max_gap + 1 decoded "
                f"frames), got {self.max_gap}"
            )
        for name in ("link_iou", "cover_iou", "min_similarity", "min_track_score", "min_motion",
                     "scene_size"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}: expected a value in [0, 1], got {value!r}")
        if not isinstance(self.refine_margin, (int, float)) or not 0 <= self.refine_margin <= 2:
            raise ConfigError(
                f"refine_margin: expected a value in [0, 2], got {self.refine_margin}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for JSON and Parquet metadata)."""
        return asdict(self)
