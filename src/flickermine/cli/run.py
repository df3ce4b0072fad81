"""``flickermine run``: the whole loop from one configuration file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flickermine.cli._common import add_quiet_argument
from flickermine.pipeline import STAGES, load_run_config, run_pipeline


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="the whole loop (detect, mine, merge, fine-tune, evaluate) from a YAML config",
        description="Runs every stage of CONFIG into its run folder, skipping stages whose "
        "inputs and options are unchanged, with a control arm and several seeds; writes "
        "summary.md, summary.json and summary.png. Interrupted runs continue where they "
        "stopped when started again.",
    )
    p.add_argument("config", help="run configuration (YAML); see examples/pets09/config.yaml")
    p.add_argument("--out", help="run folder (default: the config's out)")
    p.add_argument("--from", dest="from_stage", choices=STAGES,
                   help="run this stage and every later one again even where done")  # fmt: skip
    add_quiet_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_run_config(args.config, out=args.out)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    result = run_pipeline(config, from_stage=args.from_stage, log=log)
    print((config.out / "summary.md").read_text() if not args.quiet else "", end="")
    print(f"summary in {config.out / 'summary.md'}")
    return 0 if result["table"] else 1
