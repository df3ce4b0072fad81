"""Downloading videos with yt-dlp (as a library) into a folder plus a manifest.

The list file holds one URL or YouTube id per line (``#`` comments and blank lines ignored).
``DIR/manifest.csv`` gets one row per entry — ``id, url, file, title, duration, fps, frames,
width, height, status, error`` — rewritten atomically after each video, so an interrupted run
keeps what it did; videos already downloaded are skipped, failures are recorded and the rest go
on. ``seed_layout`` lays the videos out as the seed did (``videoN/videoN.<ext>``) with a
``mapping.csv`` from ``videoN`` to id and URL.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_write_text
from flickermine.errors import ConfigError, FlickermineError
from flickermine.paths import safe_component
from flickermine.video import VideoReader

logger = logging.getLogger(__name__)

_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")


@dataclass
class ManifestRow:
    """One entry of ``manifest.csv``."""

    id: str = ""
    url: str = ""
    file: str = ""
    title: str = ""
    duration: str = ""
    fps: str = ""
    frames: str = ""
    width: str = ""
    height: str = ""
    status: str = ""
    error: str = ""


def read_list(path: str | Path) -> list[str]:
    """URLs from a list file; bare YouTube ids become watch URLs."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the URL list: {exc}") from None
    urls: dict[str, None] = {}  # in order, each once
    for line in lines:
        # A comment starts a line or follows a space ('#' inside a URL is its fragment).
        entry = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if not entry:
            continue
        url = f"https://www.youtube.com/watch?v={entry}" if _YOUTUBE_ID.match(entry) else entry
        urls[url] = None
    if not urls:
        raise ConfigError(f"{p}: the URL list is empty")
    return list(urls)


def read_manifest(path: Path) -> dict[str, ManifestRow]:
    """Existing manifest rows by URL (empty when there is none)."""
    if not path.exists():
        return {}
    names = {f.name for f in fields(ManifestRow)}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if "url" not in (reader.fieldnames or []):
                raise ConfigError(f"{path}: not a fetch manifest (no url column)")
            return {
                row["url"]: ManifestRow(**{k: v or "" for k, v in row.items() if k in names})
                for row in reader
            }
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read the manifest: {exc}") from None


def write_manifest(path: Path, rows: list[ManifestRow]) -> None:
    """Write the manifest atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(ManifestRow)])
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    atomic_write_text(path, buf.getvalue())


def fetch_videos(
    list_file: str | Path,
    out_dir: str | Path,
    *,
    retries: int = 3,
    rate_limit: str | None = None,
    sleep: float = 0.0,
    video_format: str = "best[ext=mp4]/best",
    seed_layout: bool = False,
    on_done: Callable[[ManifestRow], None] | None = None,
) -> list[ManifestRow]:
    """Download every URL of ``list_file`` into ``out_dir`` (see the module docstring).

    Args:
        retries: attempts per video (and yt-dlp's own fragment retries).
        rate_limit: download speed cap such as ``500K`` or ``2M`` (bytes per second).
        sleep: seconds to wait between videos (be gentle with the host).
        video_format: yt-dlp format selector.
        seed_layout: write ``videoN/videoN.<ext>`` and ``mapping.csv``.
        on_done: called with each video's manifest row.

    Returns:
        The manifest rows, in list order.
    """
    try:
        import yt_dlp
    except ImportError:
        raise FlickermineError("fetch needs yt-dlp: pip install 'flickermine[fetch]'") from None
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries: expected a number of attempts >= 0, got {retries!r}")
    if not 0 <= sleep < math.inf:  # also refuses nan
        raise ConfigError(f"sleep: expected seconds >= 0, got {sleep}")
    ratelimit = _parse_rate(rate_limit) if rate_limit else None
    urls = read_list(list_file)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.csv"
    previous = read_manifest(manifest_path)
    rows: list[ManifestRow] = []
    opts: dict[str, Any] = {
        "format": video_format,
        "retries": retries,
        "fragment_retries": retries,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": logger,
    }
    if ratelimit:
        opts["ratelimit"] = ratelimit
    for n, url in enumerate(urls, start=1):
        old = previous.get(url)
        others = [r for u, r in previous.items() if u != url] + rows
        if old and old.status == "ok" and old.file and (out / old.file).is_file():
            row = old
        else:
            row = _download(yt_dlp, opts, url, out, retries, taken={r.file for r in others})
            if sleep and n < len(urls):
                time.sleep(sleep)
        if seed_layout and row.status == "ok" and not _SEED_FILE.fullmatch(row.file):
            row = _to_seed_layout(row, out, _next_seed_number(out, others))
        rows.append(row)
        write_manifest(manifest_path, rows + [r for u, r in previous.items() if u not in urls])
        if on_done:
            on_done(row)
    if seed_layout:
        mapping = "folder,id,url\n" + "".join(
            f"{Path(r.file).parent},{r.id},{r.url}\n" for r in rows if r.status == "ok"
        )
        atomic_write_text(out / "mapping.csv", mapping)
    return rows


_SEED_FILE = re.compile(r"video(\d+)/video\1\.[A-Za-z0-9]+")


def _next_seed_number(out: Path, rows: list[ManifestRow]) -> int:
    """The first ``videoN`` number above every one in use (by a manifest row or on disk): a
    finished video keeps its number when the list changes."""
    used = [int(m.group(1)) for r in rows if (m := _SEED_FILE.fullmatch(r.file))]
    used += [int(p.name[5:]) for p in out.glob("video*") if p.name[5:].isdigit()]
    return max(used, default=0) + 1


def _parse_rate(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)", text.strip().upper())
    if not match:
        raise ConfigError(f"rate limit: expected a number with optional K/M/G, got {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    rate = int(value * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[unit])
    if rate < 1:
        raise ConfigError(f"rate limit: expected at least 1 byte per second, got {text!r}")
    return rate


def _download(
    yt_dlp: Any, opts: dict[str, Any], url: str, out: Path, retries: int, taken: set[str]
) -> ManifestRow:
    """Download ``url`` into a folder of its own under ``out``, then move the video to a name
    no other source uses (``<id>.<ext>``, or ``<id>-<hash of the URL>.<ext>`` when another URL
    already has that name). A failed download leaves nothing behind."""
    row = ManifestRow(url=url)
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    staging = out / f".fetch-{digest}"  # ours: named after the URL, removed when done
    shutil.rmtree(staging, ignore_errors=True)
    try:
        path, info = _download_into(yt_dlp, opts, url, staging, retries, row)
        if path is None:
            return row
        row.id = str(info.get("id") or path.stem)
        row.title = str(info.get("title", ""))
        row.duration = str(info.get("duration") or "")
        try:
            stem = safe_component(row.id, f"{url}: the video id")
        except ConfigError:
            stem = f"video-{digest}"
        name = f"{stem}{path.suffix}"
        if name in taken or (out / name).exists():
            name = f"{stem}-{digest}{path.suffix}"
        try:
            reader = VideoReader(path)
        except FlickermineError as exc:
            row.status, row.error = "failed", f"downloaded file is not a readable video: {exc}"
            return row
        os.replace(path, out / name)
        row.file = name
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    row.fps, row.frames = f"{reader.fps:g}", str(reader.num_frames)
    row.width, row.height = str(reader.width), str(reader.height)
    if not row.duration and reader.fps:
        row.duration = f"{reader.num_frames / reader.fps:.3f}"
    row.status = "ok"
    return row


def _download_into(
    yt_dlp: Any, opts: dict[str, Any], url: str, staging: Path, retries: int, row: ManifestRow
) -> tuple[Path | None, dict[str, Any]]:
    """The downloaded file and yt-dlp's info, or ``None`` with ``row`` marked failed."""
    error = ""
    for attempt in range(1, max(1, retries) + 1):
        try:
            with yt_dlp.YoutubeDL({**opts, "outtmpl": str(staging / "download.%(ext)s")}) as ydl:
                info = ydl.extract_info(url, download=True)
                path = Path(ydl.prepare_filename(info))
            if not path.is_file():
                raise FlickermineError(f"yt-dlp reported success but wrote no file {path.name}")
            return path, info
        except Exception as exc:  # yt-dlp raises DownloadError and friends
            error = _first_line(exc)
            logger.warning("%s: attempt %d failed: %s", url, attempt, error)
    row.status, row.error = "failed", error
    return None, {}


def _first_line(exc: BaseException) -> str:
    """A one-line description of ``exc`` that is never empty (yt-dlp's messages can be
    ``ERROR: `` and nothing after it, e.g. for a truncated download: the reason is then found
    in the errors it wraps)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop(0)
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        # yt-dlp may put the reason on a line of its own ("ERROR: \r[download] Got error").
        lines = [ln.strip().removeprefix("ERROR:").strip() for ln in str(cur).splitlines()]
        text = next((ln for ln in lines if ln), "")
        if text:
            return text if cur is exc else f"download failed: {type(cur).__name__}: {text}"
        info = getattr(cur, "exc_info", None)
        todo += [info[1] if isinstance(info, tuple) and len(info) > 1 else None,
                 cur.__cause__, cur.__context__]  # fmt: skip
    return f"download failed: {type(exc).__name__} (no reason given)"


def _to_seed_layout(row: ManifestRow, out: Path, n: int) -> ManifestRow:
    src = out / row.file
    dst = out / f"video{n}" / f"video{n}{src.suffix}"
    if src != dst and src.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), dst)
    row.file = str(dst.relative_to(out))
    return row
