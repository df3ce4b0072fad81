"""Helpers shared by subcommands: progress bars, output-folder policy, SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from flickermine.errors import ConfigError, OutputExistsError

T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or ``kill`` stopping the job): it unwinds like Ctrl-C, so every
    stage leaves its outputs as an interruption does (complete, or resumable)."""


_sigterm_pending = [False]  # set by the handler until the command line has seen Terminated


def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM handler: raise :class:`Terminated` where the program is."""
    _sigterm_pending[0] = True
    raise Terminated


def raise_if_terminated() -> None:
    """Raise :class:`Terminated` (once) if SIGTERM came and its exception was lost: Python
    ignores exceptions raised in ``__del__`` methods, signal handlers' included, so a SIGTERM
    arriving while an object is finalised would otherwise let the job run on. Progress bars
    and per-video callbacks call this."""
    if _sigterm_pending[0]:
        _sigterm_pending[0] = False
        raise Terminated


def sigterm_seen() -> None:
    """The command line caught :class:`Terminated`: nothing is pending any more."""
    _sigterm_pending[0] = False


_quiet = [False]  # set by quiet_output() for the duration of a -q command


def add_quiet_argument(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress bars and nothing on stdout; warnings and errors still go to
    stderr (for batch jobs whose logs should hold only what went wrong)."""
    p.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress bars or summary; only warnings and errors are printed (stderr)",
    )  # fmt: skip


@contextlib.contextmanager
def quiet_output(quiet: bool) -> Iterator[None]:
    """For the duration: with ``quiet``, progress bars are off and stdout is discarded."""
    if not quiet:
        yield
        return
    _quiet[0] = True
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            yield
    finally:
        _quiet[0] = False


class _Bar(tqdm):
    def update(self, n: float | None = 1) -> bool | None:
        raise_if_terminated()  # a place the work passes often
        return super().update(n)


def progress_bar(total: int | None, desc: str, unit: str = "frame", **kw: Any) -> tqdm:
    """A tqdm bar on stderr showing rate and ETA; silent when stderr is not a terminal and
    under ``-q``. Its ``update`` raises :class:`Terminated` after a SIGTERM whose exception
    was lost."""
    return _Bar(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        disable=kw.pop("disable", None) or _quiet[0] or not sys.stderr.isatty(),
        file=sys.stderr,
        **kw,
    )


def check_output_dir(out: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse to write into a non-empty folder unless ``--overwrite`` or ``--resume`` is given."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (overwrite or resume):
        raise OutputExistsError(
            f"{out}: output folder exists and is not empty; pass --overwrite to replace the "
            "results of these videos or --resume to keep the finished ones"
        )


def add_shard_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--shard K/N``: this job takes every N-th video, starting with the K-th."""
    p.add_argument(
        "--shard", metavar="K/N",
        help=f"{what} only the K-th of N shares of the videos (K = 0..N-1, by sorted name), for "
        "N jobs run side by side on one folder (e.g. a SLURM array: "
        "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)",
    )  # fmt: skip


def take_shard(items: Sequence[T], shard: str | None) -> list[T]:
    """The items of shard ``"K/N"`` (every N-th from the K-th); all of them for ``None``."""
    if shard is None:
        return list(items)
    try:
        k_text, n_text = shard.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard: expected K/N such as 0/4, got {shard!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ConfigError(f"--shard: expected 0 <= K < N, got {shard!r}")
    return list(items[k::n])


def report_failure(video: Path, message: str) -> None:
    """Print ``Error: ...`` for one video of a batch, naming the video once."""
    print(f"Error: {message if str(video) in message else f'{video}: {message}'}", file=sys.stderr)
