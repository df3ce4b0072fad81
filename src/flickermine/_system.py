"""What the machine lets this process use."""

from __future__ import annotations

import logging
import os
from typing import Any


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the system has one (what a
    scheduler such as SLURM, ``taskset`` or a container's cpuset grants), else every CPU of
    the machine.

    >>> available_cpus() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks here (macOS, Windows)
        return os.cpu_count() or 1


def pyplot(what: str) -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend, or ``None`` (with a warning naming
    ``what`` is not drawn) where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.getLogger("flickermine").warning(
            "matplotlib is not installed: no %s (pip install matplotlib)", what
        )
        return None
    return plt
