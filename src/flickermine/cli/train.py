"""``flickermine train``: fine-tune a Faster R-CNN for one category (also under torchrun)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from flickermine.cli._common import add_quiet_argument, progress_bar, raise_if_terminated
from flickermine.errors import ConfigError
from flickermine.train import TrainConfig, load_config, train
from flickermine.train.loop import remove_run

_FLAGS: dict[str, tuple[type, str]] = {
    "category": (str, "category name or id (default: the file's only category)"),
    "model": (
        str,
        "torchvision model (default fasterrcnn_resnet50_fpn_v2; "
        "fasterrcnn_mobilenet_v3_large_fpn for speed)",
    ),
    "weights": (
        str,
        "initial weights: torchvision name (DEFAULT = COCO), imagenet (backbone "
        "only), a checkpoint file, or none",
    ),
    "iterations": (int, "iterations (default 29000; set by --lr-schedule)"),
    "batch_size": (int, "images per iteration and process (default 2)"),
    "lr": (float, "base learning rate (default 1e-3)"),
    "lr_schedule": (str, "LR:UNTIL pairs, e.g. 1e-3:10000,1e-4:20000,1e-5:29000"),
    "step_size": (int, "multiply the LR by --gamma every N iterations"),
    "gamma": (float, "LR decay factor for --step-size (default 0.1)"),
    "momentum": (float, "SGD momentum (default 0.9)"),
    "weight_decay": (float, "weight decay (default 5e-4)"),
    "min_size": (int, "shorter image side (default 600)"),
    "max_size": (int, "longer image side cap (default 1000)"),
    "checkpoint_every": (int, "iterations between checkpoints (default 1000)"),
    "log_every": (int, "iterations between log lines (default 20)"),
    "val": (str, "validation COCO file: AP every --val-every iterations, best.pt kept"),
    "val_images": (str, "image folder of --val (default --images)"),
    "val_every": (int, "iterations between validations (default 1000)"),
    "seed": (int, "seed of data order, flips and initialisation (default 0)"),
    "device": (str, "cpu or cuda"),
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a Faster R-CNN for one category on a COCO file",
        description="Fine-tunes a torchvision Faster R-CNN (background + one category). Runs "
        "under `torchrun --nproc_per_node=K` with DDP. Options may come from --config "
        "YAML; the effective config is saved in the run folder.",
    )
    p.add_argument("train", nargs="?", help="training COCO annotation file")
    p.add_argument("--images", help="image folder of the training file")
    p.add_argument("--out", help="run folder (checkpoints, log.csv, training.png, config.yaml)")
    p.add_argument("--config", help="YAML file of options (flags override it)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument(
        "--overwrite", action="store_true",
        help="start again in a run folder that holds a run (its files are replaced)",
    )  # fmt: skip
    p.add_argument("--no-hflip", dest="hflip", action="store_false", default=None,
                   help="no horizontal flip augmentation")  # fmt: skip
    for name, (kind, text) in _FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)
    add_quiet_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    config = load_config(args.config, overrides)
    for required in ("train", "images", "out"):
        if not getattr(config, required):
            raise ConfigError(f"--{required} (or '{required}:' in --config) is required")
    if config.weights in ("none", "None", ""):
        config.weights = None
    out = Path(config.out)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite: give one of them")
    if (out / "last.pt").exists() and not (args.resume or args.overwrite):
        raise ConfigError(
            f"{out}: holds a run already; pass --resume to continue it or --overwrite to start "
            "again"
        )
    if args.overwrite:
        remove_run(out)
    with progress_bar(config.iterations, "train", unit="it") as bar:
        if args.resume:
            bar.update(0)

        def step(iteration: int, losses: dict[str, float]) -> None:
            raise_if_terminated()
            bar.n = iteration
            bar.set_postfix(loss=f"{losses['loss']:.3f}", refresh=False)
            bar.refresh()

        summary = train(config, resume=args.resume, progress=step)
    print(f"trained {summary['iterations']} iterations: {summary['final']}")
    if summary["best"]:
        print(f"best validation AP {100 * summary['best_ap']:.1f}: {summary['best']}")
    return 0
