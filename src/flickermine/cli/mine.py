"""``flickermine mine``: find hard negatives (flickers) in videos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flickermine.cli._common import (
    add_quiet_argument,
    add_shard_argument,
    check_output_dir,
    progress_bar,
    raise_if_terminated,
    report_failure,
    take_shard,
)
from flickermine.errors import ConfigError, FlickermineError, OutputExistsError
from flickermine.mine import HardPositiveParams, MinerParams, find_jobs, mine_many
from flickermine.mine.outputs import existing_outputs
from flickermine.mine.params import DEFAULT_PRESET, PRESETS, read_params_file
from flickermine.mine.run import DECODERS, JobOutcome, check_outputs, check_video_names
from flickermine.video import VideoReader

# (flag, seed alias, parameter, type); defaults and help come from MinerParams.
PARAM_FLAGS: tuple[tuple[str, str | None, str, type], ...] = (
    ("--score-threshold", "--validScore", "score_threshold", float),
    ("--window", "--alpha", "window", int),
    ("--iou-threshold", "--iouThr", "iou_threshold", float),
    ("--search-margin", "--beta", "search_margin", int),
    ("--similarity-threshold", "--validSimScore", "similarity_threshold", float),
    ("--border-margin", "--crossBoundary", "border_margin", float),
    ("--min-area", "--smallBoxSize", "min_area", float),
    ("--confident-score", None, "confident_score", float),
    ("--support-score", None, "support_score", float),
    ("--size-outlier", None, "size_outlier", float),
    ("--size-fit-spread", None, "size_fit_spread", float),
    ("--size-fit-min-boxes", None, "size_fit_min_boxes", int),
    ("--motion-support", None, "motion_support", float),
)


def add_param_flags(parser: argparse.ArgumentParser) -> None:
    """The miner's parameters as flags (with the seed's names as aliases), ``--preset`` and
    ``--config``: a flag given overrides the config file, which overrides the preset."""
    group = parser.add_argument_group("mining parameters (see MinerParams)")
    group.add_argument(
        "--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET,
        help=f"named setting (default {DEFAULT_PRESET}; seed: the reference implementation's "
        "verdicts)",
    )  # fmt: skip
    group.add_argument(
        "--config", help="YAML file of mining parameters (as written by audit --sweep)"
    )
    defaults = MinerParams.preset(DEFAULT_PRESET)
    for flag, alias, name, kind in PARAM_FLAGS:
        flags = [flag] + ([alias] if alias else [])
        group.add_argument(
            *flags, dest=name, type=kind, default=None,
            help=f"default {getattr(defaults, name)} ({DEFAULT_PRESET})",
        )  # fmt: skip


HP_FLAGS: tuple[tuple[str, str, type], ...] = (
    ("--max-gap", "max_gap", int),
    ("--min-support", "min_support", int),
    ("--link-iou", "link_iou", float),
    ("--cover-iou", "cover_iou", float),
    ("--min-similarity", "min_similarity", float),
    ("--refine-margin", "refine_margin", float),
    ("--min-track-score", "min_track_score", float),
    ("--min-motion", "min_motion", float),
    ("--scene-size", "scene_size", float),
    ("--still-support", "still_support", int),
)


def add_hard_positive_flags(parser: argparse.ArgumentParser) -> None:
    """``--hard-positives`` and its parameters (defaults from HardPositiveParams)."""
    group = parser.add_argument_group("hard positives (missed detections; see HardPositiveParams)")
    group.add_argument(
        "--hard-positives", action="store_true",
        help="also mine frames where a persisting object was missed",
    )  # fmt: skip
    defaults = HardPositiveParams()
    for flag, name, kind in HP_FLAGS:
        group.add_argument(
            flag, dest=f"hp_{name}", type=kind, default=getattr(defaults, name),
            help=f"default {getattr(defaults, name)}",
        )  # fmt: skip


def hard_positive_params_from_args(args: argparse.Namespace) -> HardPositiveParams | None:
    """:class:`HardPositiveParams` from parsed flags, or ``None`` without ``--hard-positives``."""
    if not args.hard_positives:
        return None
    return HardPositiveParams(**{name: getattr(args, f"hp_{name}") for _, name, _ in HP_FLAGS})


def params_from_args(args: argparse.Namespace) -> MinerParams:
    """:class:`MinerParams` from ``--preset``, ``--config`` and the flags given."""
    preset = getattr(args, "preset", None) or DEFAULT_PRESET
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(read_params_file(args.config))
        try:  # a bad value in the file names the file
            MinerParams.preset(preset, **values)
        except ConfigError as exc:
            raise ConfigError(f"{args.config}: {exc}") from None
    values.update({name: getattr(args, name) for _, _, name, _ in PARAM_FLAGS
                   if getattr(args, name) is not None})  # fmt: skip
    return MinerParams.preset(preset, **values)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mine",
        help="find hard negatives (flickers) and missed objects (--hard-positives) in videos",
        description="Find detections without temporal support (hard negatives) and write "
        "frames, pictures, the seed's result file and per-detection verdicts.",
    )
    p.add_argument("video", nargs="?", help="a video file or a folder of videos")
    p.add_argument("--videoPath", dest="video_alias", help=argparse.SUPPRESS)
    p.add_argument(
        "--detections", "--detectionsFilePath", dest="detections", required=True,
        help="detection file (.parquet or legacy .txt), or a folder of them named after videos",
    )  # fmt: skip
    p.add_argument("--out", default="mined", help="output folder (default: ./mined)")
    p.add_argument("--workers", type=int, default=1, help="videos mined in parallel")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results")
    p.add_argument("--resume", action="store_true", help="skip videos already finished")
    p.add_argument(
        "--allow-partial", action="store_true",
        help="mine detection files that cover only the first frames of their video",
    )  # fmt: skip
    p.add_argument(
        "--decoder", choices=DECODERS, default="auto",
        help="decode in a child process (only the images the miner reads cross over) or in a "
        "thread; auto: the process where possible (with --workers N: where the job has 2N "
        "CPUs), else the thread",
    )  # fmt: skip
    p.add_argument(
        "--strict", action="store_true",
        help="refuse a detection file whose metadata names another video (else a warning)",
    )  # fmt: skip
    add_quiet_argument(p)
    add_shard_argument(p, "mine")
    add_param_flags(p)
    add_hard_positive_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    video = args.video or args.video_alias
    if not video:
        raise ConfigError("a VIDEO (file or folder) is required")
    params = params_from_args(args)
    hard_positives = hard_positive_params_from_args(args)
    jobs = take_shard(sorted(find_jobs(video, args.detections), key=lambda j: j.stem), args.shard)
    out = Path(args.out)
    folders = tuple(Path(p) for p in (video, args.detections) if Path(p).is_dir())
    check_outputs(jobs, out, folders)
    if args.strict:
        check_video_names(jobs)
    if args.shard is None:
        check_output_dir(out, overwrite=args.overwrite, resume=args.resume)
    elif not (args.overwrite or args.resume):  # the other shards write into the same folder
        found = [p for job in jobs for p in existing_outputs(out, job.stem)]
        if found:
            raise OutputExistsError(
                f"{found[0]}: output of an earlier run exists; pass --overwrite to replace it "
                "or --resume to keep the finished videos"
            )
    bar = progress_bar(None, f"mining {len(jobs)} video(s)", disable=args.quiet)
    if not bar.disable:  # opening every video for the total is for a bar someone sees
        bar.total = sum(_frames(job.video) for job in jobs)
        bar.refresh()

    def on_done(outcome: JobOutcome) -> None:
        raise_if_terminated()  # between videos
        if bar.disable:
            return
        if outcome.skipped and outcome.summary is None:
            bar.update(_frames(outcome.job.video))
        bar.set_postfix_str(outcome.job.stem, refresh=True)

    try:
        with bar:
            outcomes = mine_many(
                jobs, out, params, workers=args.workers, overwrite=args.overwrite,
                resume=args.resume, partial=args.allow_partial, hard_positives=hard_positives,
                progress=bar.update, on_done=on_done, decoder=args.decoder,
            )  # fmt: skip
    except KeyboardInterrupt:
        print(f"The videos finished are in {out}; the same command with --resume mines the rest.",
              file=sys.stderr)  # fmt: skip
        raise
    if not args.quiet:
        print(format_summary(outcomes, out))
    failed = [o for o in outcomes if o.error]
    for o in failed:
        report_failure(o.job.video, o.error or "")
    return 1 if failed else 0


def _frames(video: Path) -> int:
    """Frame count for the progress bar (0 for a video that will fail on its own)."""
    try:
        return VideoReader(video).num_frames
    except FlickermineError:
        return 0


def format_summary(outcomes: list[JobOutcome], out: Path) -> str:
    """The one-screen summary printed after mining."""
    keys = (
        "frames", "valid_detections", "candidates", "hard_negatives", "hard_positives",
        "frames_written",
    )  # fmt: skip
    totals = dict.fromkeys(keys, 0)
    seconds = 0.0
    done = [o for o in outcomes if o.summary]
    for o in done:
        assert o.summary is not None
        for k in keys:
            totals[k] += int(o.summary[k])
        seconds += float(o.summary["seconds"])
    skipped = sum(o.skipped for o in outcomes)
    failed = sum(bool(o.error) for o in outcomes)
    head = (
        f"flickermine mine: {len(done)} video(s) mined, {skipped} skipped (done before), "
        f"{failed} failed"
    )
    if not done and not skipped:  # nothing to count, and nothing may have been written
        return head
    lines = [
        head,
        f"  frames             {totals['frames']:>10}",
        f"  detections (valid) {totals['valid_detections']:>10}",
        f"  candidates         {totals['candidates']:>10}",
        f"  hard negatives     {totals['hard_negatives']:>10}",
        f"  hard positives     {totals['hard_positives']:>10}",
        f"  frames written     {totals['frames_written']:>10}",
        f"  time               {seconds:>9.1f}s",
        f"  results in         {out}",
    ]
    return "\n".join(lines)
