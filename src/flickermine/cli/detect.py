"""``flickermine detect``: run a detector over videos into detection files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flickermine._system import available_cpus
from flickermine.cli._common import (
    add_quiet_argument,
    add_shard_argument,
    progress_bar,
    report_failure,
    take_shard,
)
from flickermine.detect import OnnxSpec, build_detector, detect_to_file, read_class_names
from flickermine.detect.base import DetectError
from flickermine.errors import ConfigError, FlickermineError, VideoError
from flickermine.mine.run import list_videos, output_stem
from flickermine.paths import check_disjoint
from flickermine.video import VideoReader


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "detect",
        help="run a detector over every frame of videos",
        description="Writes OUT/<video>.parquet per video (and the legacy text with "
        "--legacy-txt). Interrupted runs resume; finished videos are skipped.",
    )
    p.add_argument("video", help="a video file or a folder of videos")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--backend", default="hog",
        help="hog (default, offline), torchvision, onnx, or module:function",
    )  # fmt: skip
    p.add_argument(
        "--hog-box", choices=("person", "window"), default="person",
        help="hog: the person's box (the detection window less its 16 px margin, default) or "
        "the window as OpenCV reports it (3.5 times the person's area)",
    )  # fmt: skip
    p.add_argument("--model", help="torchvision model name (default fasterrcnn_resnet50_fpn_v2)")
    p.add_argument(
        "--weights",
        help="torchvision weights name (DEFAULT, COCO_V1, ...) or a checkpoint file; the .onnx "
        "file for --backend onnx",
    )
    p.add_argument("--category", help="category to keep: COCO name or id, or a class name/index")
    p.add_argument("--score-threshold", type=float, default=0.5, help="default 0.5")
    p.add_argument("--nms-iou", type=float, default=0.15, help="class-specific NMS (seed: 0.15)")
    p.add_argument("--batch-size", type=int, default=1, help="frames per inference call")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument(
        "--workers", type=int, default=0,
        help="inference threads (default for torchvision/onnx on the CPU: one per CPU the job "
        "may use, at most 8; else 1)",
    )  # fmt: skip
    p.add_argument("--half", action="store_true", help="float16 on CUDA")
    p.add_argument("--legacy-txt", action="store_true", help="also write the seed's text format")
    p.add_argument("--overwrite", action="store_true", help="redo videos already detected")
    p.add_argument("--chunk-frames", type=int, default=256, help="frames per resumable chunk")
    add_shard_argument(p, "detect")
    o = p.add_argument_group("onnx backend")
    o.add_argument("--input-size", help="WxH the model expects (default: frames as they are)")
    o.add_argument("--resize", default="stretch", choices=("stretch", "letterbox"))
    o.add_argument("--layout", default="NCHW", choices=("NCHW", "NHWC"))
    o.add_argument("--channels", default="RGB", choices=("RGB", "BGR"))
    o.add_argument("--pixel-scale", type=float, default=255.0, help="divide pixels by (1 or 255)")
    o.add_argument("--mean", help="per-channel mean after scaling, e.g. 0.485,0.456,0.406")
    o.add_argument("--std", help="per-channel std after scaling, e.g. 0.229,0.224,0.225")
    o.add_argument(
        "--output-layout", default="separate", choices=("rows", "separate"),
        help="rows: [N,6] x1 y1 x2 y2 score class; separate: boxes/scores/labels",
    )  # fmt: skip
    o.add_argument("--normalized", action="store_true", help="output boxes are in [0, 1]")
    o.add_argument("--output-names", default="boxes,scores,labels",
                   help="names of the separate outputs (default boxes,scores,labels)")  # fmt: skip
    o.add_argument("--class-names", help="file of class names, one per line")
    add_quiet_argument(p)
    p.set_defaults(run=run)


def _triple(text: str | None, flag: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        a, b, c = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag}: expected three comma-separated numbers, got {text!r}") from None
    return a, b, c


def onnx_spec_from_args(args: argparse.Namespace) -> OnnxSpec:
    size = None
    if args.input_size:
        try:
            w, h = (int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--input-size: expected WxH, got {args.input_size!r}") from None
        size = (w, h)
    names = [n.strip() for n in args.output_names.split(",")]
    if len(names) != 3:
        raise ConfigError("--output-names: expected boxes,scores,labels names")
    return OnnxSpec(
        input_size=size, resize=args.resize, layout=args.layout, channels=args.channels,
        scale=args.pixel_scale, mean=_triple(args.mean, "--mean"), std=_triple(args.std, "--std"),
        output=args.output_layout, normalized=args.normalized, boxes_name=names[0],
        scores_name=names[1], labels_name=names[2],
        class_names=read_class_names(args.class_names) if args.class_names else (),
    )  # fmt: skip


def default_workers(backend: str, device: str) -> int:
    """One inference thread per CPU the job may use (at most 8) for torch/ONNX on the CPU; one
    otherwise (GPU, HOG, and plugins, which may not be thread-safe)."""
    if backend in ("torchvision", "onnx") and not device.startswith("cuda"):
        return min(available_cpus(), 8)
    return 1


def _videos(src: Path, out: Path) -> list[Path]:
    """The videos of ``src`` (a file or a folder), checked: names that give distinct
    detection files in ``out``, none of which is a video."""
    videos = list_videos(src) if src.is_dir() else [src]
    if not videos:
        raise ConfigError(f"{src}: no video files found")
    stems: dict[str, Path] = {}
    for video in videos:
        stem = output_stem(video)
        if stem in stems:
            raise ConfigError(
                f"{video}: {stems[stem].name} has the same name {stem!r}; their detection "
                "files would clash (rename one)"
            )
        stems[stem] = video
    outputs = [out / f"{s}{ext}" for s in stems for ext in (".parquet", ".txt")]
    check_disjoint(out, (), outputs, videos)
    return videos


def run(args: argparse.Namespace) -> int:
    src = Path(args.video)
    if not src.exists():
        raise ConfigError(f"{src}: no such video file or folder")
    out = Path(args.out)
    videos = take_shard(_videos(src, out), args.shard)
    if args.workers < 0:
        raise ConfigError(f"--workers: expected 0 (automatic) or more, got {args.workers}")
    if args.chunk_frames < 1:
        raise ConfigError(f"--chunk-frames: expected >= 1, got {args.chunk_frames}")
    detector = build_detector(
        args.backend, model=args.model, weights=args.weights, category=args.category,
        score_threshold=args.score_threshold, nms_iou=args.nms_iou, device=args.device,
        half=args.half, onnx_spec=onnx_spec_from_args(args) if args.backend == "onnx" else None,
        hog_box=args.hog_box,
    )  # fmt: skip
    workers = args.workers or default_workers(args.backend, args.device)
    if workers > 1 and hasattr(detector, "threads_per_worker"):
        # Several inference threads, each with few torch threads, keep every core busy.
        detector.threads_per_worker = max(1, available_cpus() // workers)
    totals: dict[Path, int] = {}
    failed = 0
    for video in videos:  # an unreadable video is reported; the others are still detected
        try:
            totals[video] = VideoReader(video).num_frames
        except VideoError as exc:
            report_failure(video, str(exc))
            failed += 1
    with progress_bar(sum(totals.values()), f"detect {len(totals)} video(s)") as overall:
        for video in totals:
            with progress_bar(totals[video], video.name, leave=False, position=1) as bar:

                def step(n: int, bar: Any = bar) -> None:
                    bar.update(n)
                    overall.update(n)

                try:
                    dets, computed = detect_to_file(
                        video, detector, out / f"{output_stem(video)}.parquet",
                        batch_size=args.batch_size, chunk_frames=args.chunk_frames,
                        legacy_txt=args.legacy_txt, overwrite=args.overwrite, workers=workers,
                        progress=step,
                    )  # fmt: skip
                except DetectError:
                    raise  # the detector itself is wrong: every video would fail
                except KeyboardInterrupt:
                    print(f"\n{video.name}: stopped; the same command again continues where "
                          "it stopped (finished videos are skipped).", file=sys.stderr)  # fmt: skip
                    raise
                except FlickermineError as exc:
                    report_failure(video, str(exc))
                    failed += 1
                    continue
            if not computed:
                overall.update(totals[video])
            state = "done" if computed else "already done, skipped"
            print(f"{video.name}: {len(dets)} boxes in {dets.num_frames} frames ({state})")
    return 1 if failed else 0
