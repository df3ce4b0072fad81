"""Small helpers shared by tests."""

from __future__ import annotations

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
