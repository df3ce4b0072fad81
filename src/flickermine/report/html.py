"""The review report: one static HTML page over mining outputs, opened from disk, offline.

``REPORT/index.html`` holds everything it shows (style, script and the examples' data are in
the page; thumbnails are files in ``REPORT/thumbs/``, written once, small, loaded lazily): a
summary (counts by verdict and reason, score histograms, a timeline strip per video), and a
gallery of every hard negative (red), hard positive (blue) and, on request, pseudo-positive
(green), each a crop with context and the full picture a click away, filterable and sortable,
with accept / reject buttons and keys, and an "export decisions" button that saves
``decisions.json`` for ``dataset merge --decisions``. Every string from file names or
metadata reaches the page as JSON text or escaped HTML, never as markup.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flickermine._atomic import atomic_write_bytes, atomic_write_text
from flickermine.dataset.mined import example_ids
from flickermine.errors import ConfigError, ReportError
from flickermine.mine.outputs import mined_outputs
from flickermine.paths import safe_component

#: Largest side of a thumbnail (pixels) and the context around the box (fraction of its size).
THUMB = 160
CONTEXT = 0.5
VERDICT_COLOURS = {"hard_negative": "#d62728", "hard_positive": "#1f77b4",
                   "pseudo_positive": "#2ca02c"}  # fmt: skip


@dataclass
class Video:
    """One mined video: its summary, verdict table and folders."""

    stem: str
    summary: dict[str, Any]
    verdicts: Path
    folder: Path


def find_videos(mined: list[str | os.PathLike[str]]) -> list[Video]:
    """The videos of mining output folders (or of single ``<video>.json`` summaries).

    Raises:
        MiningOutputError: a path that is not a mining output (see
            :func:`~flickermine.mine.outputs.mined_outputs`).
        ReportError: two videos with one name.
    """
    out: list[Video] = []
    for m in mined:
        for verdicts, summary in mined_outputs(m):
            summary_path = verdicts.with_name(verdicts.name.replace(".verdicts.parquet", ".json"))
            stem = safe_component(summary_path.stem, f"{summary_path}: the video's name")
            if any(v.stem == stem for v in out):
                raise ReportError(
                    f"{summary_path}: a second video named {stem!r}; report them separately"
                )
            out.append(Video(stem, summary, verdicts, verdicts.parent))
    return out


def _rows(video: Video) -> list[dict[str, Any]]:
    try:
        table = pq.read_table(video.verdicts, columns=["frame", "det", "x1", "y1", "x2", "y2",
                                                       "score", "verdict", "reason"])  # fmt: skip
    except (pa.ArrowException, OSError) as exc:
        raise ReportError(f"{video.verdicts}: unreadable verdict table: {exc}") from None
    return table.to_pylist()


def reason_kind(reason: str) -> str:
    """A reason without its numbers (``supported at t… by overlap``): what the summary counts
    and the gallery filters by.

    >>> reason_kind("hard negative: 2.74 times the height of the scene's boxes here")
    "hard negative: … times the height of the scene's boxes here"
    """
    return re.sub(r"[-+]?\d+(?:\.\d+)?", "…", reason)


def examples_of(video: Video, pseudo_positives: bool) -> list[dict[str, Any]]:
    """The examples of one video (ids as ``dataset merge --decisions`` reads them)."""
    out = []
    rows = sorted(_rows(video), key=lambda r: r["frame"])
    columns = ([r[k] for r in rows] for k in ("frame", "det", "verdict"))
    ids = example_ids(video.stem, *columns)
    # Pseudo-positives of the mined frames only: the frames written, and merged.
    mined = {r["frame"] for r in rows if r["verdict"] != "pseudo_positive"}
    for r, example in zip(rows, ids, strict=True):
        if r["verdict"] == "pseudo_positive" and not (pseudo_positives and r["frame"] in mined):
            continue
        frame = int(r["frame"]) + 1
        out.append({
            "id": example, "video": video.stem, "frame": frame,
            "verdict": r["verdict"], "reason": r["reason"] or "",
            "kind": reason_kind(r["reason"] or ""), "score": r["score"],
            "box": [round(float(r[c]), 1) for c in ("x1", "y1", "x2", "y2")],
        })  # fmt: skip
    return out


def _crop(image: np.ndarray, box: list[float], colour: str) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = max(16.0, (x2 - x1) * CONTEXT), max(16.0, (y2 - y1) * CONTEXT)
    cx1, cy1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
    cx2, cy2 = int(min(w, x2 + mx)), int(min(h, y2 + my))
    crop = image[cy1 : max(cy2, cy1 + 1), cx1 : max(cx2, cx1 + 1)].copy()
    scale = THUMB / max(crop.shape[:2])
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    bgr = tuple(int(colour[i : i + 2], 16) for i in (5, 3, 1))
    p1 = (round((x1 - cx1) * scale), round((y1 - cy1) * scale))
    p2 = (round((x2 - cx1) * scale), round((y2 - cy1) * scale))
    cv2.rectangle(crop, p1, p2, bgr, 2)
    return crop


def _thumb_name(example_id_: str) -> str:
    return hashlib.sha1(example_id_.encode()).hexdigest()[:16] + ".jpg"


def write_thumbnails(video: Video, examples: list[dict[str, Any]], out: Path) -> None:
    """``REPORT/thumbs/<hash>.jpg`` per example (kept when already written).

    Raises:
        ReportError: a frame picture of the mining output is missing (deleted?).
    """
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for e in examples:
        by_frame.setdefault(e["frame"], []).append(e)
    for frame, group in by_frame.items():
        todo = [e for e in group if not (out / "thumbs" / _thumb_name(e["id"])).is_file()]
        if not todo:
            continue
        picture = video.folder / "frames" / video.stem / f"frame{frame}.jpg"
        image = cv2.imread(str(picture)) if picture.is_file() else None
        if image is None:
            raise ReportError(
                f"{picture}: a mined frame of {video.stem} is missing or unreadable (was the "
                "mining output moved or its frames deleted?)"
            )
        for e in todo:
            crop = _crop(image, e["box"], VERDICT_COLOURS[e["verdict"]])
            _, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
            atomic_write_bytes(out / "thumbs" / _thumb_name(e["id"]), buf.tobytes())


def _histogram_svg(scores: list[float], colour: str) -> str:
    counts, _ = np.histogram(scores, bins=20, range=(0.0, 1.0)) if scores else (np.zeros(20), 0)
    top = max(1, int(max(counts)))
    bars = "".join(
        f'<rect x="{i * 10}" y="{60 - 58 * c / top:.1f}" width="9" height="{58 * c / top:.1f}" '
        f'fill="{colour}"><title>{i / 20:.2f}–{(i + 1) / 20:.2f}: {int(c)}</title></rect>'
        for i, c in enumerate(counts)
    )
    return (f'<svg class="hist" viewBox="0 0 200 62" width="200" height="62">{bars}'
            '<line x1="0" y1="61" x2="200" y2="61" stroke="#999"/></svg>')  # fmt: skip


def _timeline_svg(examples: list[dict[str, Any]], frames: int) -> str:
    n = max(1, frames)
    ticks = "".join(
        f'<line x1="{1000 * (e["frame"] - 1) / n:.1f}" x2="{1000 * (e["frame"] - 1) / n:.1f}" '
        f'y1="{2 if e["verdict"] == "hard_negative" else 14}" '
        f'y2="{12 if e["verdict"] == "hard_negative" else 24}" '
        f'stroke="{VERDICT_COLOURS[e["verdict"]]}" stroke-width="2"/>'
        for e in examples if e["verdict"] != "pseudo_positive"
    )  # fmt: skip
    return (f'<svg class="timeline" viewBox="0 0 1000 26" preserveAspectRatio="none" '
            f'width="100%" height="26"><rect width="1000" height="26" fill="#f3f3f3"/>{ticks}'
            "</svg>")  # fmt: skip


def _summary_html(videos: list[Video], examples: list[dict[str, Any]]) -> str:
    e = html.escape
    rows = []
    verdicts = ("hard_negative", "hard_positive", "pseudo_positive")
    for v in [*videos, None]:
        mine = [x for x in examples if v is None or x["video"] == v.stem]
        counts = [sum(1 for x in mine if x["verdict"] == k) for k in verdicts]
        name = "total" if v is None else v.stem
        frames = "" if v is None else str(v.summary.get("frames", ""))
        rows.append(f"<tr><td>{e(name)}</td><td>{frames}</td>"
                    + "".join(f"<td>{c}</td>" for c in counts) + "</tr>")  # fmt: skip
    reasons: dict[str, int] = {}
    for x in examples:
        reasons[x["kind"]] = reasons.get(x["kind"], 0) + 1
    reason_rows = "".join(f"<tr><td>{e(r)}</td><td>{c}</td></tr>"
                          for r, c in sorted(reasons.items(), key=lambda i: -i[1]))  # fmt: skip
    hists = "".join(
        f"<figure>{_histogram_svg([x['score'] for x in examples if x['verdict'] == k and x['score'] is not None], VERDICT_COLOURS[k])}"  # noqa: E501
        f"<figcaption>{k.replace('_', ' ')} scores</figcaption></figure>"
        for k in verdicts if any(x["verdict"] == k and x["score"] is not None for x in examples)
    )  # fmt: skip
    timelines = "".join(
        f"<div class='strip'><span>{e(v.stem)}</span>"
        f"{_timeline_svg([x for x in examples if x['video'] == v.stem], int(v.summary.get('frames', 1)))}</div>"  # noqa: E501
        for v in videos
    )  # fmt: skip
    return f"""
<section id="summary">
<table class="counts"><thead><tr><th>video</th><th>frames</th><th>hard negatives</th>
<th>hard positives</th><th>pseudo-positives shown</th></tr></thead><tbody>{"".join(rows)}</tbody>
</table>
<table class="reasons"><thead><tr><th>reason</th><th>count</th></tr></thead>
<tbody>{reason_rows}</tbody></table>
<div class="hists">{hists}</div>
<div class="timelines"><p>Where they fall (red: hard negatives, top; blue: hard positives,
bottom)</p>{timelines}</div>
</section>"""


def _json_for_script(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` can close it)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_report(
    mined: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    pseudo_positives: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``out_dir/index.html`` and its thumbnails; returns counts and the page's path.

    Raises:
        ReportError: bad inputs (see :func:`find_videos`, :func:`write_thumbnails`).
        ConfigError: ``out_dir`` holds something else and ``overwrite`` is not set.
    """
    out = Path(out_dir)
    page = out / "index.html"
    if out.exists() and any(out.iterdir()) and not page.exists() and not overwrite:
        raise ConfigError(f"{out}: exists and is not a report; pass --overwrite or choose another")
    if page.exists() and not overwrite:
        raise ConfigError(f"{page}: exists; pass --overwrite to write the report again")
    videos = find_videos(mined)
    examples = []
    for v in videos:
        mine = examples_of(v, pseudo_positives)
        write_thumbnails(v, mine, out)
        for ex in mine:
            ex["thumb"] = f"thumbs/{_thumb_name(ex['id'])}"
            picture = v.folder / "visualizations" / v.stem / f"frame{ex['frame']}.jpg"
            ex["full"] = Path(os.path.relpath(picture, out)).as_posix()
        examples += mine
    run_id = hashlib.sha1(
        b"".join(hashlib.sha1(v.verdicts.read_bytes()).digest() for v in videos)
    ).hexdigest()[:16]
    data = {"run": run_id, "videos": [v.stem for v in videos], "examples": examples}
    values = {
        "title": html.escape(", ".join(v.stem for v in videos)[:120]),
        "style": _asset("style.css"), "summary": _summary_html(videos, examples),
        "data": _json_for_script(data), "script": _asset("review.js"),
    }  # fmt: skip
    # One pass over the template: what is put in is never searched for placeholders again.
    document = re.sub(r"\{(title|style|summary|data|script)\}", lambda m: values[m.group(1)],
                      _asset("page.html"))  # fmt: skip
    atomic_write_text(page, document)
    return {"page": str(page), "examples": len(examples), "videos": len(videos), "run": run_id}


def _asset(name: str) -> str:
    """A file of the page (template, style, script), shipped with the package."""
    from importlib import resources

    return (resources.files("flickermine.report") / "assets" / name).read_text(encoding="utf-8")
