"""Small helpers shared by tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import av


def first_frames(src: Path, dst: Path, n: int) -> Path:
    """Re-encode the first ``n`` frames of ``src`` into ``dst`` (a short real clip)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=s_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = s_in.width, s_in.height, "yuv420p"
        for i, frame in enumerate(inp.decode(s_in)):
            if i >= n:
                break
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


@contextlib.contextmanager
def another_run(script: Path, *args: str) -> Iterator[None]:
    """Run ``script`` (which prints ``holding`` once it holds what it stands for: a video being
    written) in another process for the duration; it is killed at the end, as a run that dies."""
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert other.stdout is not None and other.stdout.readline() == "holding\n"
        yield
    finally:
        other.kill()
        other.wait()


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is running (a zombie nobody reaped counts as gone); return
    those still running after ``timeout`` seconds."""
    import time

    def running(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        return state not in ("Z", "X")

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(running(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if running(p)]


def children_of_a_killed_script(argv: list[str]) -> list[int]:
    """Run ``argv``, a script that prints its child processes' pids on one line and then
    kills itself with SIGKILL (as the out-of-memory killer would); return those pids."""
    import signal
    import subprocess

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert proc.wait(timeout=60) == -signal.SIGKILL
    return pids


def still_running(pids: list[int], timeout: float) -> list[int]:
    """:func:`wait_gone`, then SIGKILL what is left, so that a failing test leaves no process
    behind; returns what was left."""
    import os
    import signal

    left = wait_gone(pids, timeout)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def finished_videos(out: Path) -> list[str]:
    """The videos with complete outputs in a miner's folder, checking that no other video
    left anything: no partial file, no picture folder without its summary."""
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no partial files
    finished = sorted(p.stem for p in out.glob("*.json"))
    for kind in ("frames", "visualizations"):
        if (out / kind).is_dir():
            assert sorted(p.name for p in (out / kind).iterdir()) == finished, kind
    return finished
