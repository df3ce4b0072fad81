"""The configuration of ``flickermine run``: one YAML file for the whole loop, validated once.

Every error names the key it is about (``finetune.lr_schedule: ...``). Paths in the file are
relative to the file's folder. See ``examples/pets09/config.yaml`` for a complete example and
the README ("The whole loop") for every key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from flickermine.errors import ConfigError
from flickermine.mine.params import DEFAULT_PRESET, PRESETS, HardPositiveParams, MinerParams
from flickermine.train.config import TrainConfig

#: Training options a run sets itself (data, output, category): not allowed in the file.
_RUN_SETS = {"train", "images", "out", "category", "val", "val_images", "weights"}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - _RUN_SETS
DATA_KEYS = {"annotations", "images", "video", "gt", "frames"}
UNLABELLED_KEYS = {"videos", "video", "frames", "gt", "urls"}
DETECT_KEYS = {"score_threshold", "nms_iou", "batch_size", "device"}
MINE_KEYS = {f.name for f in fields(MinerParams)} | {"preset", "hard_positives"}
TOP_KEYS = {"out", "category", "data", "start", "detect", "mine", "merge", "finetune",
            "evaluate", "rounds", "seeds", "arms"}  # fmt: skip


@dataclass
class Arm:
    """One arm of the experiment: fine-tuning on the labelled data alone (``mine is None``,
    the control) or with frames mined with ``mine`` added."""

    name: str
    mine: dict[str, Any] | None


@dataclass
class RunConfig:
    """A validated run configuration (paths resolved against the file's folder)."""

    out: Path
    category: str
    labelled: dict[str, Any]
    unlabelled: dict[str, Any]
    test: dict[str, Any]
    start: dict[str, Any]
    detect: dict[str, Any]
    merge: dict[str, Any]
    finetune: dict[str, Any]
    evaluate: dict[str, Any]
    rounds: int
    seeds: list[int]
    arms: list[Arm] = field(default_factory=list)
    source: str = "config"


def _mapping(value: Any, key: str, allowed: set[str] | None = None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
    if allowed is not None:
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise ConfigError(
                f"{key}.{unknown[0]}: unknown key; expected one of {', '.join(sorted(allowed))}"
            )
    return dict(value)


def _path(base: Path, value: Any, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a path, got {value!r}")
    return (base / value).resolve() if not Path(value).is_absolute() else Path(value)


def _existing(base: Path, value: Any, key: str) -> Path:
    p = _path(base, value, key)
    if not p.exists():
        raise ConfigError(f"{key}: {p} does not exist")
    return p


def _data(section: Any, key: str, base: Path) -> dict[str, Any]:
    """``{annotations, images}`` of a COCO file, or ``{video, gt, frames}`` cut from a video."""
    d = _mapping(section, key, DATA_KEYS)
    if "video" in d:
        if "annotations" in d or "images" in d:
            raise ConfigError(f"{key}: give either video (+ gt, frames) or annotations + images")
        if "gt" not in d:
            raise ConfigError(f"{key}.gt: the video's ground truth is required")
        return {"video": _existing(base, d["video"], f"{key}.video"),
                "gt": _existing(base, d["gt"], f"{key}.gt"),
                "frames": _frames(d.get("frames"), f"{key}.frames")}  # fmt: skip
    for k in ("annotations", "images"):
        if k not in d:
            raise ConfigError(f"{key}.{k}: required (or give video, gt and frames)")
    return {"annotations": _existing(base, d["annotations"], f"{key}.annotations"),
            "images": _existing(base, d["images"], f"{key}.images")}  # fmt: skip


def _frames(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected START:STOP[:STEP] as text, got {value!r}")
    return value


def _train_options(section: Any, key: str, extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    opts = _mapping(section, key, TRAIN_KEYS | extra)
    try:
        TrainConfig(**opts)
    except ConfigError as exc:
        raise ConfigError(f"{key}.{exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return opts


def mine_options(section: Any, key: str) -> dict[str, Any]:
    """Checked mining options: a preset, its overrides, and hard positives (true, false or a
    mapping of their parameters)."""
    opts = _mapping(section, key, MINE_KEYS)
    preset = opts.get("preset", DEFAULT_PRESET)
    if preset not in PRESETS:
        raise ConfigError(f"{key}.preset: unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    hp = opts.get("hard_positives", False)
    try:
        miner_params(opts)
        if isinstance(hp, dict):
            HardPositiveParams(**hp)
        elif not isinstance(hp, bool):
            raise ConfigError(f"hard_positives: expected true, false or a mapping, got {hp!r}")
    except ConfigError as exc:
        raise ConfigError(f"{key}.{exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{key}.hard_positives: {exc}") from None
    return opts


def miner_params(opts: dict[str, Any]) -> MinerParams:
    """The :class:`MinerParams` of checked mining options."""
    values = {k: v for k, v in opts.items() if k not in ("preset", "hard_positives")}
    return MinerParams.preset(opts.get("preset", DEFAULT_PRESET), **values)


def hard_positive_params(opts: dict[str, Any]) -> HardPositiveParams | None:
    """The :class:`HardPositiveParams` of checked mining options (``None``: not mined)."""
    hp = opts.get("hard_positives", False)
    if hp is True:
        return HardPositiveParams()
    return HardPositiveParams(**hp) if isinstance(hp, dict) else None


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}: expected an integer >= 1, got {value!r}")
    return value


def _arms(value: Any, base_mine: dict[str, Any]) -> list[Arm]:
    if value is None:
        return [Arm("control", None), Arm("mined", dict(base_mine))]
    if not isinstance(value, list) or not value:
        raise ConfigError("arms: expected a list of {name, mine} entries")
    arms, names = [], set()
    for i, entry in enumerate(value):
        key = f"arms[{i}]"
        e = _mapping(entry, key, {"name", "mine"})
        name = e.get("name")
        if (
            not isinstance(name, str)
            or not name
            or not name.replace("-", "").replace("_", "").isalnum()
        ):
            raise ConfigError(f"{key}.name: expected a name of letters, digits, - and _")
        if name in names:
            raise ConfigError(f"{key}.name: {name!r} is used twice")
        names.add(name)
        if e.get("mine") is None:
            arms.append(Arm(name, None))
        else:
            merged = {**base_mine, **_mapping(e["mine"], f"{key}.mine")}
            arms.append(Arm(name, mine_options(merged, f"{key}.mine")))
    return arms


def load_run_config(path: str | Path, out: str | Path | None = None) -> RunConfig:
    """Read and check a run configuration.

    Raises:
        ConfigError: naming the file and the key.
    """
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    try:
        return _check(raw, p.parent.resolve(), out, str(p))
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def _check(raw: Any, base: Path, out: str | Path | None, source: str) -> RunConfig:
    cfg = _mapping(raw, "(top)", TOP_KEYS)
    cfg = copy.deepcopy(cfg)
    data = _mapping(cfg.get("data"), "data", {"labelled", "unlabelled", "test"})
    for k in ("labelled", "unlabelled", "test"):
        if k not in data:
            raise ConfigError(f"data.{k}: required")
    unl = _mapping(data["unlabelled"], "data.unlabelled", UNLABELLED_KEYS)
    if sum(k in unl for k in ("videos", "video", "urls")) != 1:
        raise ConfigError(
            "data.unlabelled: give one of videos (files or folders), video (+ frames) or urls "
            "(a list file of URLs or YouTube ids to fetch)"
        )
    unlabelled: dict[str, Any] = {"gt": _existing(base, unl["gt"], "data.unlabelled.gt")
                                  if "gt" in unl else None}  # fmt: skip
    if "video" in unl:
        unlabelled["video"] = _existing(base, unl["video"], "data.unlabelled.video")
        unlabelled["frames"] = _frames(unl.get("frames"), "data.unlabelled.frames")
    elif "urls" in unl:
        unlabelled["urls"] = _existing(base, unl["urls"], "data.unlabelled.urls")
    else:
        vids = unl["videos"] if isinstance(unl["videos"], list) else [unl["videos"]]
        unlabelled["videos"] = [_existing(base, v, f"data.unlabelled.videos[{i}]")
                                for i, v in enumerate(vids)]  # fmt: skip
    start = _mapping(cfg.get("start"), "start", {"weights", "train", "seed"})
    if ("weights" in start) == ("train" in start):
        raise ConfigError("start: give weights (a checkpoint) or train (options to train one)")
    if "weights" in start:
        start["weights"] = _existing(base, start["weights"], "start.weights")
    else:
        # The starting model may begin from published weights (weights: DEFAULT, imagenet).
        start["train"] = _train_options(start["train"], "start.train", frozenset({"weights"}))
    start["seed"] = int(start.get("seed", 0))
    detect = _mapping(cfg.get("detect"), "detect", DETECT_KEYS)
    base_mine = mine_options(cfg.get("mine"), "mine")
    merge = _mapping(cfg.get("merge"), "merge", {"require_positive"})
    evaluate = _mapping(cfg.get("evaluate"), "evaluate", {"score_threshold"})
    thr = evaluate.setdefault("score_threshold", 0.5)
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr <= 1:
        raise ConfigError(f"evaluate.score_threshold: expected a score in [0, 1], got {thr!r}")
    seeds = cfg.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"seeds: expected a list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: repeated seed in {seeds}")
    out_dir = Path(out) if out is not None else _path(base, cfg.get("out", "run"), "out")
    category = cfg.get("category", "person")
    if not isinstance(category, str) or not category:
        raise ConfigError(f"category: expected a name, got {category!r}")
    return RunConfig(
        out=out_dir,
        category=category,
        labelled=_data(data["labelled"], "data.labelled", base),
        unlabelled=unlabelled,
        test=_data(data["test"], "data.test", base),
        start=start,
        detect=detect,
        merge=merge,
        finetune=_train_options(cfg.get("finetune"), "finetune"),
        evaluate=evaluate,
        rounds=_positive_int(cfg.get("rounds", 1), "rounds"),
        seeds=seeds,
        arms=_arms(cfg.get("arms"), base_mine),
        source=source,
    )
