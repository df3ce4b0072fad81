"""Names and paths that come from users or data files, checked in one place.

Every stage derives file names from what it is given: video stems, fetched ids and titles,
COCO ``file_name`` values, the frame paths of a result file. Each such name goes through
:func:`safe_component` (a single path component) or :func:`inside` (a relative path that stays
in its folder) before anything is written or deleted; output folders go through
:func:`check_disjoint` so that no output can land on an input; and clean-up goes through
:func:`remove_own_files`, which deletes only files whose names this package writes and never a
folder that still holds anything else.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath

from flickermine.errors import ConfigError

_FORBIDDEN = re.compile(r"[/\\\x00-\x1f]")


def safe_component(name: str, what: str) -> str:
    """``name`` if it is one safe path component, else :class:`ConfigError`.

    Safe: not empty, not ``.`` or ``..`` (nor only dots), no slash, backslash or control
    character, at most 200 characters.

    >>> safe_component("clip", "video name")
    'clip'
    >>> safe_component("..", "video name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    flickermine.errors.ConfigError: video name '..' cannot be used as a file name ...
    """
    if not name or set(name) == {"."} or _FORBIDDEN.search(name) or len(name) > 200:
        raise ConfigError(
            f"{what} {name!r} cannot be used as a file name (empty, dots only, or a path)"
        )
    return name


def inside(folder: str | os.PathLike[str], relative: str, what: str) -> Path:
    """``folder / relative`` when ``relative`` is a relative path that stays inside ``folder``
    (no absolute path, drive, ``..`` or empty component), else :class:`ConfigError`."""
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    parts = posix.parts
    if (
        not relative
        or posix.is_absolute()
        or windows.drive
        or windows.root
        or "\\" in relative
        or any(part in ("..", "") for part in parts)
        or "\x00" in relative
    ):
        raise ConfigError(f"{what} {relative!r} is not a path inside {folder}")
    return Path(folder).joinpath(*parts)


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name the same file (links and ``..`` resolved)."""
    return _resolved(a) == _resolved(b)


def is_within(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (links resolved)."""
    p, f = _resolved(path), _resolved(folder)
    return p == f or f in p.parents


def check_disjoint(
    out_dir: str | os.PathLike[str],
    input_folders: Iterable[str | os.PathLike[str]] = (),
    outputs: Iterable[str | os.PathLike[str]] = (),
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse outputs that could touch inputs.

    Args:
        out_dir: the output folder; it may not be, or lie inside, an input folder.
        input_folders: folders given as inputs (of videos, detections, images).
        outputs: every file or folder that will be written or replaced.
        inputs: every input file; none may be an output or lie inside an output folder.

    Raises:
        ConfigError: naming the output and the input it would touch.
    """
    for folder in input_folders:
        if is_within(out_dir, folder):
            raise ConfigError(
                f"{out_dir}: the output folder is (or is inside) the input folder {folder}; "
                "choose an output folder outside the inputs"
            )
    targets = list(outputs)
    for source in inputs:
        for target in targets:
            if is_within(source, target):
                raise ConfigError(
                    f"{target}: this output would replace the input {source}; "
                    "choose another output folder"
                )


def remove_own_files(folder: Path, pattern: re.Pattern[str]) -> None:
    """Delete the files of ``folder`` whose names match ``pattern`` (what this package wrote
    there), then the folder itself if nothing else is left. Sub-folders, links to folders and
    other files are never touched."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for entry in folder.iterdir():
        if pattern.fullmatch(entry.name) and (entry.is_symlink() or entry.is_file()):
            entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if empty
