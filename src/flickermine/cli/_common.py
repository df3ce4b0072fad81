"""Helpers shared by subcommands: progress bars and output-folder policy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from flickermine.errors import OutputExistsError


def progress_bar(total: int | None, desc: str, unit: str = "frame", **kw: Any) -> tqdm:
    """A tqdm bar on stderr showing rate and ETA; silent when stderr is not a terminal."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        disable=kw.pop("disable", None) or not sys.stderr.isatty(),
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
