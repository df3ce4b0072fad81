"""Mining whole videos and folders of videos: the library calls behind ``flickermine mine``."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import cv2

from flickermine._system import available_cpus
from flickermine.decoding import PixelNeeds, ProcessDecoder, process_decoding_available
from flickermine.errors import ConfigError, FlickermineError, InvalidDetectionsError
from flickermine.io import DETECTION_SUFFIXES, load_detections
from flickermine.mine.flicker import iter_flickers
from flickermine.mine.outputs import (
    VideoResultWriter,
    discard_unclaimed,
    existing_outputs,
    lock_path,
    output_paths,
    partial_paths,
)
from flickermine.mine.params import DEFAULT_PRESET, HardPositiveParams, MinerParams
from flickermine.paths import check_disjoint, safe_component
from flickermine.structures import VideoDetections
from flickermine.video import Frame, VideoReader, is_video_file, prefetch

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]

#: Frames decoded ahead in a background thread while earlier frames are judged.
PREFETCH = 8


@dataclass(frozen=True)
class MineJob:
    """One video and its detection file."""

    video: Path
    detections: Path

    @property
    def stem(self) -> str:
        """Name used for the video's outputs."""
        return output_stem(self.video)


class _FrameCounter:
    """Counts frames passing through and reports them to a progress callback in small batches."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.count = 0
        self._progress = progress

    def wrap(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        pending = 0
        for frame in frames:
            self.count += 1
            pending += 1
            if self._progress is not None and pending >= 16:
                self._progress(pending)
                pending = 0
            yield frame
        if self._progress is not None and pending:
            self._progress(pending)


def output_stem(video: str | os.PathLike[str]) -> str:
    """The name of a video's outputs (its file name without the suffix), checked to be one
    safe path component (a video named ``..mp4`` cannot name a folder of results)."""
    return safe_component(Path(video).stem, f"{video}: the video's name")


def check_outputs(
    jobs: list[MineJob], out_dir: str | os.PathLike[str], input_folders: tuple[Path, ...] = ()
) -> None:
    """Refuse an output folder whose outputs could replace or delete an input: the folder is
    (or is inside) an input folder, or an output of a job has the path of an input file.

    Raises:
        ConfigError: naming the output and the input.
    """
    out = Path(out_dir)
    outputs: list[Path] = []
    for job in jobs:
        outputs.extend(output_paths(out, job.stem).values())
        outputs.extend(partial_paths(out, job.stem))
        outputs.append(lock_path(out, job.stem))
    check_disjoint(
        out, input_folders, outputs, [p for job in jobs for p in (job.video, job.detections)]
    )


DECODERS = ("auto", "process", "thread")


def _use_process(decoder: str) -> bool:
    if decoder == "auto":
        return (
            process_decoding_available()
            and available_cpus() > 1
            and not mp.current_process().daemon
        )
    return decoder == "process"


def pool_decoder(decoder: str, workers: int, cpus: int | None = None) -> str:
    """The decoder each of ``workers`` parallel workers uses: ``"auto"`` becomes the process
    decoder where every worker can have two CPUs (its miner and its decoder child), else the
    thread decoder (the other workers keep the cores busy); an explicit choice is kept."""
    if decoder != "auto":
        return decoder
    cpus = available_cpus() if cpus is None else cpus
    return "process" if process_decoding_available() and cpus >= 2 * workers else "thread"


@contextlib.contextmanager
def _opencv_threads(count: int | None) -> Iterator[None]:
    """OpenCV's thread count set to ``count`` (a process-wide setting) for the duration."""
    if count is None:
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def check_frame_counts(
    dets: VideoDetections, video_frames: int, det_source: str, video_source: str, *, partial: bool
) -> VideoDetections:
    """Reconcile the detections' frame count with the video's.

    More detection frames than video frames is always an error. Fewer is an error unless
    ``partial`` (then only the covered frames are mined): a legacy file that ends early usually
    comes from an interrupted detection run.
    """
    n = dets.num_frames
    if n > video_frames:
        raise InvalidDetectionsError(
            f"{det_source} has detections for {n} frames but {video_source} has only "
            f"{video_frames} frames"
        )
    if n < video_frames and not partial:
        raise InvalidDetectionsError(
            f"{det_source} covers only {n} of the {video_frames} frames of {video_source} "
            "(was the detection run interrupted?); pass --allow-partial (partial=True) to use "
            "the covered frames only"
        )
    return dets


def other_video(meta: dict[str, Any], video: str | os.PathLike[str]) -> str | None:
    """The video a detection file's metadata names when that is not ``video`` (by file name;
    ``None`` when it is, or when no video is recorded, as in legacy text files)."""
    recorded = meta.get("video")
    if not isinstance(recorded, str) or not recorded:
        return None
    return None if Path(recorded).name == Path(video).name else Path(recorded).name


def check_video_names(jobs: list[MineJob]) -> None:
    """Refuse jobs whose detection file records another video (``mine --strict``).

    Raises:
        ConfigError: naming the detection file, the video it was made for and the video.
    """
    from flickermine.io import read_native_meta

    for job in jobs:
        if job.detections.suffix != ".parquet":
            continue
        other = other_video(read_native_meta(job.detections), job.video)
        if other:
            raise ConfigError(
                f"{job.detections}: made for {other}, not for {job.video.name} (--strict)"
            )


def check_frame_size(dets: VideoDetections, reader: VideoReader, det_source: str) -> None:
    """Refuse detections whose metadata says they were made on frames of another size than
    the video's (upright) frames: their boxes would be in other coordinates. Files without
    a recorded size (legacy text files) are not checked."""
    try:
        made = (int(dets.meta["width"]), int(dets.meta["height"]))
    except (KeyError, TypeError, ValueError):
        return
    size = (reader.width, reader.height)
    if made == size or 0 in made:
        return
    hint = ""
    if made == size[::-1] and reader.rotation in (90, 270):
        hint = (
            f" (the video is shown turned by {reader.rotation} degrees, its display rotation, "
            "as players and OpenCV show it; these detections were made on the unturned "
            "pictures: detect again)"
        )
    raise InvalidDetectionsError(
        f"{det_source} was made on {made[0]}x{made[1]} frames but the frames of "
        f"{reader.path} are {size[0]}x{size[1]}{hint}"
    )


# Public API: its options are keyword-only, one per command-line flag.
def mine_video(  # noqa: PLR0913
    video: str | os.PathLike[str],
    detections: str | os.PathLike[str] | VideoDetections,
    out_dir: str | os.PathLike[str],
    params: MinerParams | None = None,
    *,
    overwrite: bool = False,
    partial: bool = False,
    hard_positives: HardPositiveParams | None = None,
    progress: ProgressCallback | None = None,
    decoder: str = "auto",
) -> dict[str, Any]:
    """Mine one video for hard negatives and write its outputs (see :mod:`.outputs`).

    Args:
        video: the video file.
        detections: its detection file (native ``.parquet`` or legacy ``.txt``) or detections.
        out_dir: output folder (created if needed).
        params: miner parameters (default: the default preset, :data:`DEFAULT_PRESET`).
        overwrite: replace this video's outputs from an earlier run.
        partial: accept detections covering only the first frames of the video.
        hard_positives: also mine missed detections with these parameters (docs/method.md §4).
        progress: called with the number of frames decoded since the last call.
        decoder: ``"process"`` decodes in a child process that hands over only the images the
            miner reads (:mod:`flickermine.decoding`), in parallel with the judging;
            ``"thread"`` decodes in a background thread of this process; ``"auto"`` (default)
            picks the process where it can fork and has more than one CPU, unless this process
            is itself a daemon. Results are identical.

    Returns:
        The summary written to ``out_dir/<stem>.json``: counts, timing, parameters, paths.
    """
    params = params or MinerParams.preset(DEFAULT_PRESET)
    if decoder not in DECODERS:
        raise ConfigError(f"decoder: expected one of {', '.join(DECODERS)}, got {decoder!r}")
    start = time.perf_counter()
    if not isinstance(detections, VideoDetections):
        check_outputs([MineJob(Path(video), Path(detections))], out_dir)
    reader = VideoReader(video)
    # Started before the detections are read: it decodes ahead while they are loaded and the
    # work is planned (it learns which images the miner reads when the frames are asked for).
    ahead = ProcessDecoder(reader) if _use_process(decoder) else None
    writer: VideoResultWriter | None = None
    try:
        if isinstance(detections, VideoDetections):
            dets, det_source = detections, "detections"
        else:
            dets, det_source = load_detections(detections), str(detections)
        dets = check_frame_counts(dets, reader.num_frames, det_source, str(video), partial=partial)
        other = other_video(dets.meta, video)
        if other:
            logger.warning("%s: made for %s, not for %s", det_source, other, Path(video).name)
        check_frame_size(dets, reader, det_source)
        counter = _FrameCounter(progress)

        def frames(needs: PixelNeeds) -> Iterator[Frame]:
            if ahead is not None:
                return counter.wrap(ahead.frames(needs, limit=dets.num_frames))
            # One decoding thread (the judging uses the other core), skipping unneeded frames.
            single = reader.frames(threads=False, wanted=needs.any())
            return counter.wrap(prefetch(itertools.islice(single, dets.num_frames), PREFETCH))

        recorded = run_params(params, hard_positives)
        writer = VideoResultWriter(Path(out_dir), output_stem(video), recorded, overwrite=overwrite)
        # With the decoder on another core, OpenCV's own worker threads only get in its way.
        with _opencv_threads(1 if ahead is not None else None):
            for verdicts in iter_flickers(
                frames, dets, params, reader.width, reader.height, hard_positives=hard_positives,
                threads=0 if ahead is not None else 2,
            ):  # fmt: skip
                writer.add(verdicts)
                del verdicts  # holds its frame's images: the last one must not outlive the pass
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if ahead is not None:
            ahead.close()
    decoded = counter.count
    if decoded < dets.num_frames:
        writer.abort()
        raise InvalidDetectionsError(
            f"{det_source} has detections for {dets.num_frames} frames but only {decoded} "
            f"frames could be decoded from {video}"
        )
    summary = {
        "video": str(video),
        "detections": det_source,
        "frames": dets.num_frames,
        "video_frames": reader.num_frames,
        "fps": reader.fps,
        "width": reader.width,
        "height": reader.height,
        "frames_examined": max(0, dets.num_frames - 2 * params.window),
        "detections_total": len(dets),
        "valid_detections": int((dets.score >= params.score_threshold).sum()),
        "seconds": round(time.perf_counter() - start, 3),
    }
    result = writer.close(summary)
    if ahead is not None:
        ahead.unmap_soon()  # every frame is let go of now (pictures written)
    logger.info("mined %s: %d hard negatives", video, result["hard_negatives"])
    return result


# ---------------------------------------------------------------------------- folders
def list_videos(folder: Path) -> list[Path]:
    """Videos in ``folder``: files with a video suffix, and the seed's ``videoN/videoN.mkv``."""
    videos = sorted(p for p in folder.iterdir() if p.is_file() and is_video_file(p))
    # The seed's layout: videoN/videoN.mkv (or any single video inside a sub-folder).
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        inside = sorted(p for p in sub.iterdir() if p.is_file() and is_video_file(p))
        named = [p for p in inside if p.stem == sub.name]
        if named:
            videos.append(named[0])
        elif len(inside) == 1:
            videos.append(inside[0])
    return videos


def _detections_for(video: Path, folder: Path) -> Path | None:
    names = [video.stem, video.parent.name] if video.parent.name != video.stem else [video.stem]
    for name in names:
        for suffix in DETECTION_SUFFIXES:
            for candidate in (folder / f"{name}{suffix}", folder / name / f"{name}{suffix}"):
                if candidate.is_file():
                    return candidate
    return None


def find_jobs(video: str | os.PathLike[str], detections: str | os.PathLike[str]) -> list[MineJob]:
    """Pair videos with detection files.

    ``video`` is a file or a folder of videos (also the seed's ``videoN/videoN.mkv`` layout);
    ``detections`` is a file (for one video) or a folder of files named after the videos
    (``<stem>.parquet`` or ``<stem>.txt``, possibly inside ``<stem>/``).

    Raises:
        ConfigError: missing paths, no videos, videos without detections, duplicate names.
    """
    vpath, dpath = Path(video), Path(detections)
    if not vpath.exists():
        raise ConfigError(f"{vpath}: no such video file or folder")
    if not dpath.exists():
        raise ConfigError(f"{dpath}: no such detection file or folder")
    if vpath.is_file():
        if dpath.is_dir():
            found = _detections_for(vpath, dpath)
            if found is None:
                raise ConfigError(f"{dpath}: no detection file named after {vpath.name}")
            dpath = found
        return [MineJob(vpath, dpath)]
    videos = list_videos(vpath)
    if not videos:
        raise ConfigError(f"{vpath}: no video files found")
    if dpath.is_file():
        if len(videos) == 1:  # the seed's --videoPath videoN (a folder holding one video)
            return [MineJob(videos[0], dpath)]
        raise ConfigError(
            f"{vpath} holds {len(videos)} videos: --detections must be a folder, not {dpath}"
        )
    jobs, missing, stems = [], [], set()
    for v in videos:
        output_stem(v)
        if v.stem in stems:
            raise ConfigError(f"{v}: two videos share the name {v.stem!r}; outputs would clash")
        stems.add(v.stem)
        found = _detections_for(v, dpath)
        if found is None:
            missing.append(v.name)
        else:
            jobs.append(MineJob(v, found))
    if missing:
        raise ConfigError(
            f"{dpath}: no detection file for {len(missing)} video(s): {', '.join(missing[:10])}"
        )
    return jobs


def run_params(params: MinerParams, hard_positives: HardPositiveParams | None) -> dict[str, Any]:
    """The parameters recorded with a video's results (and compared on ``resume``)."""
    out = params.to_dict()
    out["hard_positives"] = hard_positives.to_dict() if hard_positives else None
    return out


def is_done(
    job: MineJob,
    out_dir: Path,
    params: MinerParams,
    hard_positives: HardPositiveParams | None = None,
) -> bool:
    """Whether ``out_dir`` already holds finished outputs of ``job`` mined with ``params``."""
    summary = output_paths(out_dir, job.stem)["summary"]
    if not summary.is_file():
        return False
    try:
        recorded = json.loads(summary.read_text())["params"]
        return bool(recorded == run_params(params, hard_positives))
    except (ValueError, KeyError, OSError):
        return False


@dataclass
class JobOutcome:
    """What happened to one video of a batch."""

    job: MineJob
    summary: dict[str, Any] | None = None
    error: str | None = None
    skipped: bool = False


@dataclass(frozen=True)
class _Settings:
    """How every video of a batch is mined (what :func:`mine_video` gets besides the video)."""

    out: Path
    params: MinerParams
    hard_positives: HardPositiveParams | None
    redo: bool  # replace outputs an earlier run left (--overwrite or --resume)
    partial: bool
    decoder: str

    def mine(self, job: MineJob, progress: ProgressCallback | None) -> dict[str, Any]:
        return mine_video(
            job.video, job.detections, self.out, self.params,
            overwrite=self.redo, partial=self.partial, hard_positives=self.hard_positives,
            progress=progress, decoder=self.decoder,
        )  # fmt: skip

    def is_done(self, job: MineJob) -> bool:
        return is_done(job, self.out, self.params, self.hard_positives)


@dataclass
class _Tally:
    """The outcomes of a batch so far, handed to ``on_done`` as they come."""

    on_done: Callable[[JobOutcome], None] | None
    outcomes: list[JobOutcome] = field(default_factory=list)
    #: Times a video was being mined when a worker died that is not known to have mined it.
    strikes: dict[str, int] = field(default_factory=dict)

    def record(self, outcome: JobOutcome) -> None:
        self.outcomes.append(outcome)
        if self.on_done:
            self.on_done(outcome)

    def finished(self) -> set[str]:
        return {outcome.job.stem for outcome in self.outcomes}


_progress_queue: Any = None  # a worker process's channel for progress (see _worker_init)
_started_by: Any = None  # shared with the parent: the pid of the worker that took each job
_stop_requested = False  # a worker process was asked to stop (SIGTERM from the parent)


def _worker_init(queue: Any, started_by: Any, parent: int) -> None:
    """Start of a worker process: keep the progress channel and the record of who took
    which job; leave Ctrl-C to the parent, which stops the workers (see :func:`mine_many`);
    stop if the parent dies."""
    global _progress_queue, _started_by
    _progress_queue, _started_by = queue, started_by
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # ``parent`` comes from the parent itself: by the time a slow start reaches this point,
    # a parent killed meanwhile has already been replaced by the process that adopted us.
    threading.Thread(
        target=_watch_parent, args=(parent,), name="flickermine-orphan", daemon=True
    ).start()


def _watch_parent(parent: int) -> None:
    # A parent killed outright (SIGKILL, out of memory) cannot stop its workers, and the
    # pool's queues never tell them: they would wait for work forever. An orphan is adopted by
    # another process, so its parent id changes; it then stops as if the parent had asked.
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _request_stop(signum: int, frame: Any) -> None:
    global _stop_requested
    _stop_requested = True


def _worker(job: MineJob, settings: _Settings, number: int) -> dict[str, Any]:
    queue = _progress_queue
    if _started_by is not None:  # shared memory: known to the parent at once, should we die
        _started_by[number] = os.getpid()

    def report(n: int) -> None:
        if queue is not None:
            queue.put(n)
        if _stop_requested:  # in the frame loop: mine_video removes this video's outputs
            raise KeyboardInterrupt

    # SIGTERM from the parent ends the worker: while a video is mined, at its next progress
    # report (or once it is complete); between videos at once (the default action).
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        return settings.mine(job, report)  # decoder resolved by mine_many (see pool_decoder)
    except KeyboardInterrupt:
        os._exit(130)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if _stop_requested:
            os._exit(130)  # not the next queued video


# Public API: its options are keyword-only, one per command-line flag.
def mine_many(  # noqa: PLR0913
    jobs: list[MineJob],
    out_dir: str | os.PathLike[str],
    params: MinerParams | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    resume: bool = False,
    partial: bool = False,
    hard_positives: HardPositiveParams | None = None,
    progress: ProgressCallback | None = None,
    on_done: Callable[[JobOutcome], None] | None = None,
    decoder: str = "auto",
) -> list[JobOutcome]:
    """Mine several videos, ``workers`` at a time; a failing video does not stop the others.

    With ``resume``, videos whose outputs were finished with the same parameters are skipped and
    the rest are redone. ``progress`` receives decoded-frame increments from every worker.
    ``decoder`` is :func:`mine_video`'s; with several workers ``"auto"`` means ``"process"``
    where every worker can have two CPUs, else ``"thread"`` (see :func:`pool_decoder`).
    """
    if decoder not in DECODERS:
        raise ConfigError(f"decoder: expected one of {', '.join(DECODERS)}, got {decoder!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers: expected an integer >= 1, got {workers!r}")
    out = Path(out_dir)
    check_outputs(jobs, out)
    params = params or MinerParams.preset(DEFAULT_PRESET)
    tally = _Tally(on_done)
    todo: list[MineJob] = []
    for job in jobs:
        if resume and is_done(job, out, params, hard_positives):
            tally.record(JobOutcome(job, skipped=True))
        else:
            todo.append(job)
    if workers > 1:
        decoder = pool_decoder(decoder, workers)
    settings = _Settings(out, params, hard_positives, overwrite or resume, partial, decoder)
    if workers <= 1:
        for job in todo:
            outcome = JobOutcome(job)
            try:
                outcome.summary = settings.mine(job, progress)
            except FlickermineError as exc:
                outcome.error = str(exc)
            tally.record(outcome)
        return tally.outcomes
    # A worker that dies (killed for memory, a crash in a decoder) breaks the pool: its video
    # is reported as failed and the others go on in a fresh pool.
    remaining = todo
    while remaining:
        remaining = _run_pool(remaining, settings, workers, progress, tally)
    return tally.outcomes


#: Exit codes of workers that the pool or the parent stopped (not the one that died).
_STOPPED = (0, 130, -signal.SIGTERM)


def _run_pool(
    jobs: list[MineJob],
    settings: _Settings,
    workers: int,
    progress: ProgressCallback | None,
    tally: _Tally,
) -> list[MineJob]:
    """Mine ``jobs`` in a pool of worker processes; returns the jobs to redo in a fresh pool
    when a worker died (the video it was mining is recorded as failed)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    started_by = ctx.RawArray("q", len(jobs))  # job number -> pid of the worker that took it
    pool = ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=ctx,
        initializer=_worker_init, initargs=(queue, started_by, os.getpid()),
    )  # fmt: skip
    futures: dict[Future[dict[str, Any]], MineJob] = {
        pool.submit(_worker, job, settings, number): job for number, job in enumerate(jobs)
    }
    processes = dict(getattr(pool, "_processes", {}))  # pid -> process, all started by now
    # Outputs an earlier run left, which these workers do not replace (they refuse them): never
    # to be removed when this pool breaks.
    out = settings.out
    theirs = set() if settings.redo else {j.stem for j in jobs if existing_outputs(out, j.stem)}
    try:
        broken = _collect(futures, queue, progress, tally)
    except BaseException:
        # Ctrl-C (or a failure): no new video starts, and the videos being mined stop now,
        # each removing its partial outputs; finished videos are kept (--resume skips them).
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes.values():
            with contextlib.suppress(OSError, ValueError):
                process.terminate()
        raise
    finally:
        pool.shutdown(wait=True)
    _report_progress(queue, progress)  # what the workers sent before they exited
    queue.close()
    if not broken:
        return []
    # Each worker's last video (it mines one at a time, in the order it took them).
    mining = {pid: jobs[number].stem for number, pid in enumerate(started_by) if pid}
    dead = {pid: p.exitcode for pid, p in processes.items() if p.exitcode not in _STOPPED}
    _record_dead(jobs, mining, dead, theirs, settings, tally)
    # The videos the stopped workers had taken: finished ones (their result was lost with the
    # pool) are kept; the others are removed, to be mined again.
    finished = tally.finished()
    for number, job in enumerate(jobs):
        if started_by[number] and job.stem not in finished and job.stem not in theirs:
            if settings.is_done(job):
                summary = json.loads(output_paths(out, job.stem)["summary"].read_text())
                tally.record(JobOutcome(job, summary=summary))
            else:
                discard_unclaimed(out, job.stem)
    finished = tally.finished()
    return [job for job in jobs if job.stem not in finished]


def _collect(
    futures: dict[Future[dict[str, Any]], MineJob],
    queue: Any,
    progress: ProgressCallback | None,
    tally: _Tally,
) -> bool:
    """Record the videos as their workers finish them; ``True`` when the pool broke (a
    worker died) before all were done."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        _report_progress(queue, progress)
        broken = False
        for fut in done:
            outcome = JobOutcome(futures[fut])
            try:
                outcome.summary = fut.result()
            except BrokenProcessPool:
                broken = True
                continue
            except FlickermineError as exc:
                outcome.error = str(exc)
            tally.record(outcome)
        if broken:
            return True
    return False


def _record_dead(
    jobs: list[MineJob],
    mining: dict[int, str],
    dead: dict[int, int | None],
    theirs: set[str],
    settings: _Settings,
    tally: _Tally,
) -> None:
    """Record as failed the videos whose worker died (``mining``: each worker's last video;
    ``dead``: the exit codes of the workers that died). When it is not known which worker
    died, every video being mined is suspect, and fails the second time."""
    finished = tally.finished()
    culprits = {
        mining[pid]: code
        for pid, code in dead.items()
        if pid in mining and mining[pid] not in finished
    }
    if not culprits:
        for stem in set(mining.values()) - finished:
            tally.strikes[stem] = tally.strikes.get(stem, 0) + 1
            if tally.strikes[stem] >= 2:
                culprits[stem] = next(iter(dead.values()), None)
        if not mining:
            raise FlickermineError(
                f"{settings.out}: worker processes died before mining anything (exit codes "
                f"{sorted(str(c) for c in dead.values())}); try --workers 1"
            )
    by_stem = {job.stem: job for job in jobs}
    for stem, code in culprits.items():
        if stem not in theirs:
            discard_unclaimed(settings.out, stem)  # what the dead worker left half written
        outcome = JobOutcome(by_stem[stem])
        outcome.error = (
            f"{by_stem[stem].video}: the worker process mining it died ({_exit_text(code)}); "
            "its other videos go on in new workers"
        )
        tally.record(outcome)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = ", out of memory?" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


def _report_progress(queue: Any, progress: ProgressCallback | None) -> None:
    """Hand the frame counts the workers sent on to ``progress``."""
    while True:
        try:
            n = queue.get_nowait()
        except (Empty, OSError, EOFError):
            return
        if progress is not None:
            progress(n)
