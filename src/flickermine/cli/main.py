"""Entry point: ``flickermine <command> ...``; ``main(argv)`` is callable from Python too."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from flickermine import __version__
from flickermine.cli import (
    audit,
    convert,
    dataset,
    demo,
    detect,
    evaluate,
    fetch,
    mine,
    report,
    run,
    train,
)
from flickermine.cli._common import Terminated, on_sigterm, quiet_output, sigterm_seen
from flickermine.errors import FlickermineError

COMMANDS = (fetch, detect, mine, audit, report, convert, dataset, train, evaluate, run, demo)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every subcommand registered)."""
    parser = argparse.ArgumentParser(
        prog="flickermine",
        description="Mine hard examples for an object detector from unlabeled video.",
    )
    parser.add_argument("--version", action="version", version=f"flickermine {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sigterm_seen()


def _quiet_opencv() -> None:
    """OpenCV's own ``[ WARN...]`` lines (e.g. ``imread_`` on a missing file) only repeat what
    the error message says: errors only."""
    import cv2

    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 partial failure, 2 error,
    130 interrupted by Ctrl-C, 143 stopped by SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_opencv()
    try:
        with _sigterm_unwinds(), quiet_output(getattr(args, "quiet", False)):
            return int(args.run(args))
    except FlickermineError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permissions ...: the message names the file
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("Terminated.", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
