"""``flickermine fetch``: download videos (yt-dlp) into a folder with a manifest."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flickermine.cli._common import add_quiet_argument, progress_bar
from flickermine.fetch import ManifestRow, fetch_videos, read_list


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "fetch",
        help="download videos from a list of URLs or YouTube ids",
        description="Downloads with yt-dlp into OUT/ and writes OUT/manifest.csv. Videos "
        "already downloaded are skipped; failures are recorded and reported.",
    )
    p.add_argument("list", help="file with one URL or YouTube id per line")
    p.add_argument("--out", required=True, help="video folder")
    p.add_argument("--retries", type=int, default=3, help="attempts per video (default 3)")
    p.add_argument("--rate-limit", help="download speed cap, e.g. 500K or 2M (bytes/s)")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds between videos")
    p.add_argument("--format", default="best[ext=mp4]/best", help="yt-dlp format selector")
    p.add_argument(
        "--seed-layout", action="store_true",
        help="lay out videos as videoN/videoN.<ext> with mapping.csv (the seed's layout)",
    )  # fmt: skip
    add_quiet_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    total = len(read_list(args.list))
    with progress_bar(total, "fetch", unit="video") as bar:

        def done(row: ManifestRow) -> None:
            bar.update(1)
            bar.set_postfix_str(row.id or row.url[-30:])

        rows = fetch_videos(
            args.list, args.out, retries=args.retries, rate_limit=args.rate_limit,
            sleep=args.sleep, video_format=args.format, seed_layout=args.seed_layout,
            on_done=done,
        )  # fmt: skip
    ok = [r for r in rows if r.status == "ok"]
    failed = [r for r in rows if r.status != "ok"]
    print(f"fetched {len(ok)} of {len(rows)} videos into {args.out} (manifest.csv)")
    for r in failed:
        print(f"Error: {r.url}: {r.error}", file=sys.stderr)
    return 1 if failed else 0
