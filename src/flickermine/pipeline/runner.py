"""The whole loop as stages: prepare, start, detect, mine, merge, train, evaluate.

Each stage's output lives in ``RUN/stages/<stage>-<key>/``, where the key is a hash of the
stage's inputs (the keys of the stages it reads, fingerprints of the user's files) and options.
A stage whose folder holds a ``stage.json`` with its key is done and skipped; editing an option
changes the key of that stage and of every stage after it, so exactly those run again, and
stages that share inputs (every arm detects the unlabelled videos with the same starting model
in round 1) run once. A stage is written in ``<folder>.partial`` and renamed when complete;
training runs in place and resumes from its last checkpoint after an interruption.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_write_text
from flickermine.errors import ConfigError
from flickermine.pipeline.config import Arm, RunConfig, hard_positive_params, miner_params

logger = logging.getLogger(__name__)

STAGES = ("prepare", "start", "detect", "mine", "merge", "train", "evaluate")
#: Frames between two parts cut from one video (labelled, unlabelled, test) below which a
#: warning says near-duplicate frames may leak from one part into another.
MIN_GAP = 25

Log = Callable[[str], None]


def fingerprint(path: Path) -> Any:
    """What identifies a user's file or folder for the stage keys: path, size and modification
    time (of every file, for a folder), not the content (videos are large)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        stats = [(str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return [str(p.resolve()), hashlib.sha1(json.dumps(stats).encode()).hexdigest()]
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


@dataclass
class Runner:
    """Runs the stages of one configuration into its run folder.

    Args:
        config: the checked configuration.
        force: stages to run again even when done (``--from STAGE``: it and every later one).
        log: receives one line per stage started, skipped or finished.
    """

    config: RunConfig
    force: set[str] = field(default_factory=set)
    log: Log = logger.info
    _ran: set[str] = field(default_factory=set)

    @property
    def stages_dir(self) -> Path:
        return self.config.out / "stages"

    def stage(self, kind: str, key_parts: dict[str, Any], work: Callable[[Path], Any]) -> Path:
        """Run ``work(folder)`` for this stage unless its folder is done; returns the folder."""
        key = hashlib.sha1(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()
        folder = self.stages_dir / f"{kind}-{key[:12]}"
        marker = folder / "stage.json"
        forced = kind in self.force and key not in self._ran
        if marker.is_file() and not forced and _read_key(marker) == key:
            self.log(f"{kind:<9} {folder.name}: done before, skipped")
            return folder
        self.log(f"{kind:<9} {folder.name}: running")
        started = time.perf_counter()
        if kind == "train":  # in place: an interrupted run resumes from its checkpoint
            if forced or (folder.exists() and not (folder / "last.pt").exists()):
                _remove_ours(folder)
            folder.mkdir(parents=True, exist_ok=True)
            work(folder)
        else:
            partial = folder.with_name(folder.name + ".partial")
            _remove_ours(partial)
            partial.mkdir(parents=True)
            work(partial)
            _remove_ours(folder)
            os.replace(partial, folder)
        seconds = round(time.perf_counter() - started, 1)
        record = {"stage": kind, "key": key, "inputs": key_parts, "seconds": seconds}
        atomic_write_text(marker, json.dumps(record, indent=2, default=str))
        self._ran.add(key)
        self.log(f"{kind:<9} {folder.name}: done in {seconds} s")
        return folder


def _read_key(marker: Path) -> str | None:
    try:
        return str(json.loads(marker.read_text())["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_ours(folder: Path) -> None:
    """Remove a stage folder: only ever one under ``RUN/stages/`` named by a stage."""
    if folder.is_dir() and folder.parent.name == "stages" and folder.name.split("-")[0] in STAGES:
        shutil.rmtree(folder)


# ---------------------------------------------------------------------------- the stages
@dataclass
class Prepared:
    """The data every later stage reads (paths, and the key that names them)."""

    labelled: tuple[Path, Path]  # annotations, images
    test: tuple[Path, Path]
    videos: list[Path]
    unlabelled_gt: dict[str, Path]  # video stem -> MOTChallenge ground truth of that video
    key: str


def _coco_part(part: dict[str, Any], folder: Path, name: str, category: str) -> tuple[Path, Path]:
    from flickermine.dataset.coco import save_coco
    from flickermine.dataset.frames import frames_dataset, parse_range
    from flickermine.video import VideoReader

    if "annotations" in part:
        return Path(part["annotations"]), Path(part["images"])
    reader = VideoReader(part["video"])
    frames = parse_range(part["frames"], reader.num_frames, f"data.{name}.frames")
    coco = frames_dataset(part["video"], folder / name, frames, category=category, gt=part["gt"])
    save_coco(coco, folder / name / "annotations.json")
    return folder / name / "annotations.json", folder / name / "images"


def _check_parts_apart(cfg: RunConfig, log: Log) -> None:
    """Parts cut from one video must not overlap; a gap under :data:`MIN_GAP` is warned of."""
    from flickermine.dataset.frames import parse_range
    from flickermine.video import VideoReader

    cuts = []
    for name, part in (("labelled", cfg.labelled), ("unlabelled", cfg.unlabelled),
                       ("test", cfg.test)):  # fmt: skip
        if part.get("video") is not None:
            n = VideoReader(part["video"]).num_frames
            r = parse_range(part.get("frames"), n, f"data.{name}.frames")
            cuts.append((name, Path(part["video"]).resolve(), r.start, r.stop))
    for i, (a, va, sa, ea) in enumerate(cuts):
        for b, vb, sb, eb in cuts[i + 1 :]:
            if va != vb:
                continue
            gap = max(sb - ea, sa - eb)
            if gap < 0:
                raise ConfigError(
                    f"data.{a} (frames {sa}:{ea}) and data.{b} (frames {sb}:{eb}) overlap: a "
                    "frame would be both trained on and tested or mined"
                )
            if gap < MIN_GAP:
                log(f"warning: data.{a} and data.{b} are only {gap} frames apart; near-"
                    f"duplicate frames may leak (leave at least {MIN_GAP})")  # fmt: skip


def prepare(runner: Runner) -> Prepared:
    """Stage ``prepare``: COCO files of the parts given as video frames, the unlabelled clip."""
    cfg = runner.config
    _check_parts_apart(cfg, runner.log)

    def part_key(part: dict[str, Any]) -> Any:
        return {k: fingerprint(v) if isinstance(v, Path) else v for k, v in part.items()}

    unl = cfg.unlabelled
    key_parts = {"labelled": part_key(cfg.labelled), "test": part_key(cfg.test),
                 "category": cfg.category,
                 "unlabelled": {k: ([fingerprint(p) for p in v] if isinstance(v, list)
                                    else (fingerprint(v) if isinstance(v, Path) else v))
                                for k, v in unl.items()}}  # fmt: skip

    def work(folder: Path) -> None:
        from flickermine.dataset.frames import parse_range, write_clip
        from flickermine.video import VideoReader

        _coco_part(cfg.labelled, folder, "labelled", cfg.category)
        _coco_part(cfg.test, folder, "test", cfg.category)
        if unl.get("urls") is not None:
            from flickermine.fetch import fetch_videos

            rows = fetch_videos(unl["urls"], folder / "unlabelled")
            failed = [r for r in rows if r.status != "ok"]
            if not rows or len(failed) == len(rows):
                first = f" (first: {failed[0].url}: {failed[0].error})" if failed else ""
                raise ConfigError(f"data.unlabelled.urls: no video could be fetched{first}")
            for r in failed:
                runner.log(f"warning: {r.url}: not fetched: {r.error}")
        if unl.get("video") is not None:
            reader = VideoReader(unl["video"])
            frames = parse_range(unl.get("frames"), reader.num_frames, "data.unlabelled.frames")
            clip = folder / "unlabelled" / f"{Path(unl['video']).stem}.mp4"
            write_clip(unl["video"], clip, range(frames.start, frames.stop))
            if unl.get("gt") is not None:  # renumbered to the clip, for the audit only
                _shift_mot(unl["gt"], folder / "unlabelled" / "gt.txt", frames.start, frames.stop)

    folder = runner.stage("prepare", key_parts, work)
    lab = _coco_part_paths(cfg.labelled, folder, "labelled")
    test = _coco_part_paths(cfg.test, folder, "test")
    if unl.get("video") is not None:
        videos = [folder / "unlabelled" / f"{Path(unl['video']).stem}.mp4"]
        gts = {videos[0].stem: folder / "unlabelled" / "gt.txt"} if unl.get("gt") else {}
    elif unl.get("urls") is not None:
        from flickermine.fetch import read_manifest

        rows = read_manifest(folder / "unlabelled" / "manifest.csv").values()
        videos = [folder / "unlabelled" / r.file for r in rows if r.status == "ok"]
        gts = {}
    else:
        from flickermine.mine.run import list_videos

        videos = []
        for v in unl["videos"]:
            videos += list_videos(v) if Path(v).is_dir() else [Path(v)]
        gts = {videos[0].stem: Path(unl["gt"])} if unl.get("gt") and len(videos) == 1 else {}
    return Prepared(lab, test, videos, gts, folder.name)


def _coco_part_paths(part: dict[str, Any], folder: Path, name: str) -> tuple[Path, Path]:
    if "annotations" in part:
        return Path(part["annotations"]), Path(part["images"])
    return folder / name / "annotations.json", folder / name / "images"


def _shift_mot(src: Path, dst: Path, start: int, stop: int) -> None:
    """The lines of frames ``start:stop`` (0-based) of a MOTChallenge file, renumbered from 1."""
    from flickermine.audit import read_mot_gt

    read_mot_gt(src)  # checked (errors name the file and line)
    out = []
    for line in Path(src).read_text().splitlines():
        parts = line.split(",")
        if len(parts) < 6 or not parts[0].strip().isdigit():
            continue
        frame = int(parts[0]) - 1
        if start <= frame < stop:
            out.append(",".join([str(frame - start + 1), *parts[1:]]))
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dst, "\n".join(out) + "\n")


def start_model(runner: Runner, prepared: Prepared) -> tuple[Path, str]:
    """Stage ``start``: the model every arm starts from (a checkpoint given, or trained on the
    labelled part)."""
    cfg = runner.config
    if "weights" in cfg.start:
        path = Path(cfg.start["weights"])
        return path, json.dumps(fingerprint(path))

    def work(folder: Path) -> None:
        _train(folder, prepared.labelled, cfg.category, None, cfg.start["train"],
               cfg.start["seed"])  # fmt: skip

    key = {"data": prepared.key, "train": _resolved_train(cfg.start["train"]),
           "seed": cfg.start["seed"]}  # fmt: skip
    folder = runner.stage("start", key, work)
    return folder / "final.pt", folder.name


def _train(
    folder: Path,
    data: tuple[Path, Path],
    category: str,
    weights: Path | None,
    options: dict[str, Any],
    seed: int,
) -> None:
    from flickermine.train import TrainConfig, train

    options = dict(options)
    start_weights = options.pop("weights", None)  # only the starting model's may say
    chosen = str(weights) if weights else start_weights
    config = TrainConfig(train=str(data[0]), images=str(data[1]), out=str(folder),
                         category=category, weights=chosen, seed=seed, **options)  # fmt: skip
    train(config, resume=(folder / "last.pt").exists())


def _resolved_train(options: dict[str, Any]) -> dict[str, Any]:
    """Every training option, defaults included (a changed default re-runs training)."""
    from flickermine.train import TrainConfig

    resolved = TrainConfig(**options).to_dict()
    for key in ("train", "images", "out", "category", "val", "val_images"):
        resolved.pop(key, None)
    return resolved


def detect_stage(runner: Runner, prepared: Prepared, model: Path, model_key: str) -> Path:
    """Stage ``detect``: the unlabelled videos through the current model."""
    cfg = runner.config
    opts = {"score_threshold": 0.05, "nms_iou": 0.5, "batch_size": 4, "device": "cpu",
            **cfg.detect}  # fmt: skip

    def work(folder: Path) -> None:
        from flickermine.detect import build_detector, detect_to_file

        detector = build_detector("torchvision", weights=str(model), **{
            k: opts[k] for k in ("score_threshold", "nms_iou", "device")})  # fmt: skip
        for video in prepared.videos:
            detect_to_file(video, detector, folder / f"{video.stem}.parquet",
                           batch_size=int(opts["batch_size"]))  # fmt: skip

    return runner.stage("detect", {"data": prepared.key, "model": model_key, "detect": opts}, work)


def mine_stage(runner: Runner, prepared: Prepared, dets: Path, arm: Arm) -> Path:
    """Stage ``mine``: the arm's mining of the current detections."""
    assert arm.mine is not None
    opts = arm.mine

    def work(folder: Path) -> None:
        from flickermine.mine import mine_video

        for video in prepared.videos:
            mine_video(video, dets / f"{video.stem}.parquet", folder, miner_params(opts),
                       hard_positives=hard_positive_params(opts), decoder="thread")  # fmt: skip
        if prepared.unlabelled_gt:
            from flickermine.audit import audit

            result = audit(folder, {k: v for k, v in prepared.unlabelled_gt.items()})
            atomic_write_text(folder / "audit.json", json.dumps(result, indent=2))

    # The resolved parameters, not the options as written: a changed default re-runs mining.
    hp = hard_positive_params(opts)
    resolved = {
        "miner": miner_params(opts).to_dict(),
        "hard_positives": hp.to_dict() if hp else None,
    }
    return runner.stage("mine", {"detections": dets.name, "mine": resolved}, work)


def merge_stage(runner: Runner, prepared: Prepared, mined: Path) -> Path:
    """Stage ``merge``: the labelled data plus the mined frames, in a dataset of its own (the
    labelled images are linked, never written to)."""
    cfg = runner.config

    def work(folder: Path) -> None:
        from flickermine.dataset import load_coco, read_mined
        from flickermine.dataset.coco import check_coco, save_coco
        from flickermine.dataset.merge import add_mined_frames

        coco = load_coco(prepared.labelled[0])
        check_coco(coco, str(prepared.labelled[0]))
        images = folder / "images"
        images.mkdir()
        for img in coco["images"]:
            from flickermine.dataset.coco import image_file

            src = image_file(prepared.labelled[1], img, str(prepared.labelled[0]))
            dst = images / img["file_name"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            _link(src, dst)
        report = add_mined_frames(
            coco,
            read_mined(mined),
            images,
            cfg.category,
            link=True,
            require_positive=bool(cfg.merge.get("require_positive")),
        )
        save_coco(coco, folder / "annotations.json")
        atomic_write_text(folder / "merge.json", json.dumps(vars(report), indent=2))

    key = {"data": prepared.key, "mined": mined.name, "merge": cfg.merge}
    return runner.stage("merge", key, work)


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        os.symlink(src.resolve(), dst)


def train_stage(
    runner: Runner,
    data: tuple[Path, Path],
    data_key: str,
    model: Path,
    model_key: str,
    seed: int,
) -> Path:
    """Stage ``train``: fine-tune the current model on ``data`` with ``seed``."""
    cfg = runner.config

    def work(folder: Path) -> None:
        _train(folder, data, cfg.category, model, cfg.finetune, seed)

    key = {"data": data_key, "model": model_key, "finetune": _resolved_train(cfg.finetune),
           "seed": seed}  # fmt: skip
    return runner.stage("train", key, work)


def evaluate_stage(runner: Runner, prepared: Prepared, trained: Path, model_key: str) -> Path:
    """Stage ``evaluate``: COCO AP and false positives per image on the test part."""
    cfg = runner.config
    thr = float(cfg.evaluate["score_threshold"])

    def work(folder: Path) -> None:
        from flickermine.dataset import load_coco
        from flickermine.evaluate import coco_metrics, predict_coco
        from flickermine.evaluate.compare import false_positives

        gt = load_coco(prepared.test[0])
        cid = gt["categories"][0]["id"]
        dets = predict_coco(trained, gt, prepared.test[1], cid, source=str(prepared.test[0]))
        metrics = coco_metrics(gt, dets, cid, source=str(prepared.test[0])).to_dict()
        fps = false_positives(gt, dets, cid, thr)
        metrics["fp_per_image"] = sum(map(len, fps.values())) / max(1, len(gt["images"]))
        metrics["fp_score_threshold"] = thr
        atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))
        atomic_write_text(folder / "detections.json", json.dumps(dets))

    key = {"data": prepared.key, "model": model_key, "evaluate": cfg.evaluate}
    return runner.stage("evaluate", key, work)


# ---------------------------------------------------------------------------- the loop
def run_loop(runner: Runner) -> list[dict[str, Any]]:
    """Every round of every arm and seed; returns one row per (round, arm, seed)."""
    cfg = runner.config
    prepared = prepare(runner)
    start, start_key = start_model(runner, prepared)
    models = {(arm.name, s): (start, start_key) for arm in cfg.arms for s in cfg.seeds}
    rows = []
    for rnd in range(1, cfg.rounds + 1):
        for arm in cfg.arms:
            for seed in cfg.seeds:
                model, model_key = models[(arm.name, seed)]
                row: dict[str, Any] = {"round": rnd, "arm": arm.name, "seed": seed}
                if arm.mine is None:
                    data, data_key = prepared.labelled, prepared.key
                else:
                    dets = detect_stage(runner, prepared, model, model_key)
                    mined = mine_stage(runner, prepared, dets, arm)
                    merged = merge_stage(runner, prepared, mined)
                    data = (merged / "annotations.json", merged / "images")
                    data_key = merged.name
                    row.update(_mined_counts(mined, merged))
                trained = train_stage(runner, data, data_key, model, model_key, seed)
                models[(arm.name, seed)] = (trained / "final.pt", trained.name)
                metrics = evaluate_stage(runner, prepared, trained / "final.pt", trained.name)
                m = json.loads((metrics / "metrics.json").read_text())
                row.update(ap=m["ap"], ap50=m["ap50"], fp_per_image=m["fp_per_image"],
                           model=str(trained / "final.pt"))  # fmt: skip
                rows.append(row)
    return rows


def _mined_counts(mined: Path, merged: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"hard_negatives": 0, "hard_positives": 0}
    for verdicts in mined.glob("*.verdicts.parquet"):
        summary = mined / verdicts.name.replace(".verdicts.parquet", ".json")
        s = json.loads(summary.read_text())
        out["hard_negatives"] += int(s.get("hard_negatives", 0))
        out["hard_positives"] += int(s.get("hard_positives", 0))
    report = json.loads((merged / "merge.json").read_text())
    out["frames_added"] = report["images_added"]
    audit_file = mined / "audit.json"
    if audit_file.is_file():
        total = json.loads(audit_file.read_text())["total"]
        out["hn_precision"] = total["hard_negative_precision"]
        out["hp_precision"] = total["hard_positive_precision"]
        out["pp_precision"] = total["pseudo_positive_precision"]
    return out
