"""The training loop: SGD on a torchvision Faster R-CNN, checkpoints, exact resume, validation,
and DDP when started by ``torchrun``."""

from __future__ import annotations

import csv
import io
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flickermine._atomic import atomic_path, atomic_write_text
from flickermine.dataset.coco import image_file, load_coco
from flickermine.errors import ConfigError
from flickermine.models import (
    ModelError,
    build_model,
    imagenet_model,
    pretrained_model,
    read_checkpoint,
    require_torch,
    resolve_device,
    save_checkpoint,
)
from flickermine.paths import remove_own_files
from flickermine.train.config import TrainConfig, save_config
from flickermine.train.data import CocoTrainSet
from flickermine.video import prefetch

logger = logging.getLogger(__name__)

LOG_FIELDS = ("iteration", "lr", "loss", "loss_classifier", "loss_box_reg", "loss_objectness",
              "loss_rpn_box_reg", "val_ap", "val_ap50", "seconds")  # fmt: skip


def _distributed() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def initial_model(config: TrainConfig, num_classes: int) -> Any:
    """The model to fine-tune: from a checkpoint, torchvision detection weights (box predictor
    replaced for ``num_classes``), an ImageNet backbone (``weights`` imagenet), or untrained
    (``weights`` none)."""
    torch = require_torch()
    weights = config.weights
    if weights in (None, "", "none", "None"):
        return build_model(config.model, num_classes, min_size=config.min_size,
                           max_size=config.max_size)  # fmt: skip
    if Path(str(weights)).suffix in (".pt", ".pth") or Path(str(weights)).is_file():
        ckpt = read_checkpoint(str(weights))
        if ckpt["model_name"] != config.model:
            raise ModelError(
                f"{weights}: checkpoint is a {ckpt['model_name']}, not a {config.model}"
            )
        model = build_model(config.model, ckpt["num_classes"], min_size=config.min_size,
                            max_size=config.max_size)  # fmt: skip
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise ModelError(
                f"{weights}: weights do not fit a {config.model}: {str(exc)[:200]}"
            ) from None
        if ckpt["num_classes"] != num_classes:
            _replace_predictor(model, num_classes)
        return model
    if str(weights).lower() == "imagenet":
        return imagenet_model(config.model, num_classes, min_size=config.min_size,
                              max_size=config.max_size)  # fmt: skip
    model, _ = pretrained_model(config.model, str(weights))
    _replace_predictor(model, num_classes)
    model.transform.min_size = (config.min_size,)
    model.transform.max_size = config.max_size
    del torch
    return model


def _replace_predictor(model: Any, num_classes: int) -> None:
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    head = getattr(getattr(model, "roi_heads", None), "box_predictor", None)
    if head is None:
        raise ConfigError("only Faster R-CNN models can be fine-tuned to a new category count")
    model.roi_heads.box_predictor = FastRCNNPredictor(head.cls_score.in_features, num_classes)


def _rng_state(torch: Any) -> dict[str, Any]:
    """The random generators' states as tensors and plain values (what a checkpoint loaded
    with ``weights_only=True`` may hold)."""
    version, internal, gauss = random.getstate()
    key, words, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [str(key), torch.from_numpy(np.asarray(words, np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }  # fmt: skip


def _set_rng_state(torch: Any, state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    key, words, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((key, words.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


@dataclass
class _Run:
    """A training run's state, shared by the steps of :func:`train`."""

    config: TrainConfig
    torch: Any
    device: Any
    rank: int
    world: int
    out: Path
    data: CocoTrainSet
    category: dict[str, Any]
    val_set: Any
    model: Any = None
    ddp_model: Any = None
    optimizer: Any = None
    start: int = 0
    best_ap: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    def checkpoint(self, path: Path, iteration: int, **extra: Any) -> None:
        """Save model, optimizer, iteration, RNG state and config (rank 0 only)."""
        if self.rank == 0:
            save_checkpoint(path, self.model, self.config.model, [self.category],
                            optimizer=self.optimizer.state_dict(), iteration=iteration,
                            rng=_rng_state(self.torch), best_ap=self.best_ap,
                            config=self.config.to_dict(), **extra)  # fmt: skip


def _open_run(config: TrainConfig) -> _Run:
    """Device (and the process group under ``torchrun``), output folder, data."""
    torch = require_torch()
    rank, world = _distributed()
    local = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    device = resolve_device(local if config.device == "cuda" and world > 1 else config.device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data = CocoTrainSet(load_coco(config.train), config.images, config.category, config.train)
    category = {"id": data.category["id"],
                "name": data.category.get("name", str(data.category["id"]))}  # fmt: skip
    val_set = None
    if config.val:
        from flickermine.evaluate import coco_metrics  # noqa: F401 - fail early if missing

        val_set = load_coco(config.val)
        CocoTrainSet(val_set, config.val_images or config.images, category["id"], config.val)
    return _Run(config, torch, device, rank, world, out, data, category, val_set)


def _build_model(run: _Run) -> None:
    """Seeded model and optimizer."""
    config, torch = run.config, run.torch
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    run.model = initial_model(config, 2).to(run.device)
    params = [p for p in run.model.parameters() if p.requires_grad]
    run.optimizer = torch.optim.SGD(params, lr=config.lr_at(0), momentum=config.momentum,
                                    weight_decay=config.weight_decay)  # fmt: skip


def _resume(run: _Run) -> None:
    """Model, optimizer, iteration and RNG state from ``last.pt``; the log cut back to it."""
    if not run.last_path.exists():
        raise ConfigError(f"{run.last_path}: nothing to resume (no checkpoint yet)")
    ckpt = read_checkpoint(run.last_path)
    try:
        run.model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.start, run.best_ap = int(ckpt["iteration"]), float(ckpt.get("best_ap", -1.0))
        _set_rng_state(run.torch, ckpt["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ConfigError(
            f"{run.last_path}: cannot resume from it ({type(exc).__name__}: {detail}); "
            f"was the run started with another --model or options?"
        ) from None
    logger.info("resuming at iteration %d", run.start)
    if run.rank == 0:
        _cut_log(run.out / "log.csv", run.start)


def _step(
    run: _Run, iteration: int, samples: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """One SGD step on ``samples``; returns the losses."""
    torch, device = run.torch, run.device
    for group in run.optimizer.param_groups:
        group["lr"] = run.config.lr_at(iteration)
    images = [torch.from_numpy(img).to(device) for img, _ in samples]
    targets = [{"boxes": torch.from_numpy(b).to(device),
                "labels": torch.ones(len(b), dtype=torch.int64, device=device)}
               for _, b in samples]  # fmt: skip
    losses = run.ddp_model(images, targets)
    loss = sum(losses.values())
    run.optimizer.zero_grad()
    loss.backward()
    run.optimizer.step()
    values = {k: float(v.detach()) for k, v in losses.items()}
    values["loss"] = float(loss.detach())
    return values


def _log_and_validate(
    run: _Run, done: int, iteration: int, window: list[dict[str, float]], seconds: float
) -> bool:
    """The log row and validation due after ``done`` iterations; True when a row was written
    (the loss window then starts again)."""
    config = run.config
    row = None
    if done % config.log_every == 0 or done == config.iterations:
        row = _log_row(done, config.lr_at(iteration), window, seconds)
    if run.val_set is not None and (done % config.val_every == 0 or done == config.iterations):
        ap = _validate(run.model, run.val_set, config, run.category, run.rank)
        run.model.train()
        row = row or _log_row(done, config.lr_at(iteration), window, seconds)
        row["val_ap"], row["val_ap50"] = ap.ap, ap.ap50
        if ap.ap > run.best_ap:
            run.best_ap = ap.ap
            run.checkpoint(run.out / "best.pt", done, val=ap.to_dict())
    if row is not None and run.rank == 0:
        run.history.append(row)
        _append_log(run.out / "log.csv", row)
    return row is not None


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train as ``config`` says; returns a summary (final and best checkpoint, last metrics).

    Args:
        resume: continue from ``RUN_DIR/last.pt`` exactly where it stopped.
        progress: called after every iteration with (iteration, losses).
        stop_after: stop (with a checkpoint) after this many iterations of this call; for tests
            and time-boxed jobs.
    """
    run = _open_run(config)
    _build_model(run)
    if resume:
        _resume(run)
    if run.rank == 0:
        save_config(config, run.out / "config.yaml")
    run.ddp_model = run.model
    if run.world > 1:
        run.ddp_model = run.torch.nn.parallel.DistributedDataParallel(run.model)

    def batches() -> Iterator[tuple[int, list[tuple[np.ndarray, np.ndarray]]]]:
        for it in range(run.start, config.iterations):
            yield it, run.data.batch(it, config.batch_size, config.seed, config.hflip,
                                     (run.rank, run.world))  # fmt: skip

    run.model.train()
    t0 = time.perf_counter()
    window: list[dict[str, float]] = []
    iteration = run.start
    for iteration, samples in prefetch(batches(), size=2):
        values = _step(run, iteration, samples)
        window.append(values)
        if progress:
            progress(iteration + 1, values)
        done = iteration + 1
        if _log_and_validate(run, done, iteration, window, time.perf_counter() - t0):
            window = []
        stopping = stop_after is not None and done - run.start >= stop_after
        if done % config.checkpoint_every == 0 or done == config.iterations or stopping:
            run.checkpoint(run.last_path, done)
        if stopping:
            break
    if run.world > 1:
        run.torch.distributed.barrier()
    final = run.out / "final.pt"
    if run.rank == 0 and iteration + 1 >= config.iterations:
        run.checkpoint(final, config.iterations)
        _plot(run.out / "log.csv", run.out / "training.png")
    return {"run_dir": str(run.out), "last": str(run.last_path), "final": str(final),
            "best": str(run.out / "best.pt") if run.best_ap >= 0 else None,
            "best_ap": run.best_ap, "iterations": iteration + 1,
            "history": run.history}  # fmt: skip


#: The files a training run writes into its folder (and their temporary names).
_OWN_FILES = re.compile(
    r"\.?(last\.pt|best\.pt|final\.pt|log\.csv|training\.png|config\.yaml)(\..*\.tmp)?"
)


def remove_run(out: Path) -> None:
    """Delete what a training run wrote into ``out`` (its checkpoints, log, plot and config;
    nothing else)."""
    remove_own_files(Path(out), _OWN_FILES)


def _log_row(
    iteration: int, lr: float, window: list[dict[str, float]], seconds: float
) -> dict[str, Any]:
    row: dict[str, Any] = {"iteration": iteration, "lr": lr, "seconds": round(seconds, 2)}
    for key in LOG_FIELDS[2:8]:
        vals = [w[key] for w in window if key in w]
        row[key] = round(float(np.mean(vals)), 5) if vals else ""
    return row


def _cut_log(path: Path, iteration: int) -> None:
    """Drop the log rows written after ``iteration`` (the checkpoint a run resumes from): the
    resumed run writes them again."""
    if not path.exists():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if _log_iteration(r) <= iteration]
    if len(kept) == len(rows):
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(kept)
    atomic_write_text(path, buf.getvalue())


def _log_iteration(row: dict[str, Any]) -> int:
    try:
        return int(row.get("iteration") or 0)
    except ValueError:
        return 0


def _append_log(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})


def _validate(
    model: Any, val: dict[str, Any], config: TrainConfig, category: dict[str, Any], rank: int
) -> Any:
    """COCO AP of the model being trained on the validation file (rank 0 only)."""
    torch = require_torch()
    from flickermine.evaluate import coco_metrics

    if rank != 0:
        return coco_metrics(val, [], category["id"], source=str(config.val))
    model.eval()
    images_dir = Path(config.val_images or config.images)
    results = []
    with torch.inference_mode():
        for img in val["images"]:
            import cv2

            path = image_file(images_dir, img, str(config.val))
            bgr = cv2.imread(str(path))
            if bgr is None:
                raise ConfigError(f"{path}: validation image unreadable")
            x = (
                torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))).float()
                / 255
            )
            o = model([x.to(next(model.parameters()).device)])[0]
            for box, score in zip(o["boxes"].tolist(), o["scores"].tolist(), strict=True):
                results.append({"image_id": img["id"], "category_id": category["id"],
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "score": score})  # fmt: skip
    return coco_metrics(val, results, category["id"], source=str(config.val))


def _plot(log: Path, png: Path) -> None:
    """Losses and validation AP against iterations."""
    if not log.exists():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log.open() as fh:
        rows = list(csv.DictReader(fh))
    its = [int(r["iteration"]) for r in rows if r["loss"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key in ("loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"):
        # Markers too: a run with a single log row would otherwise draw nothing.
        ax.plot(its, [float(r[key]) for r in rows if r["loss"]], ".-", label=key)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    val = [(int(r["iteration"]), float(r["val_ap"])) for r in rows if r.get("val_ap")]
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val, strict=True), "ko-", label="val AP")
        ax2.set_ylabel("validation AP (fraction)")
        ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
