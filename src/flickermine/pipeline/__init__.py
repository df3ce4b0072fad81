"""``flickermine run``: the whole loop (detect, mine, merge, fine-tune, evaluate) from one
configuration file, as stages that are skipped when their inputs and options are unchanged,
with a control arm and several seeds so that the answer can be trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flickermine.pipeline.config import RunConfig, load_run_config
from flickermine.pipeline.runner import STAGES, Runner, run_loop
from flickermine.pipeline.summary import write_summary

__all__ = ["STAGES", "RunConfig", "load_run_config", "run_pipeline"]


def run_pipeline(
    config: RunConfig, *, from_stage: str | None = None, log: Any = None
) -> dict[str, Any]:
    """Run every stage of ``config`` (``from_stage``: that stage and every later one run again
    even when done); returns the summary written to ``config.out``.

    Raises:
        ConfigError: an unknown stage name, or inconsistent data parts.
    """
    from flickermine.errors import ConfigError

    if from_stage is not None and from_stage not in STAGES:
        raise ConfigError(f"--from: unknown stage {from_stage!r}; one of {', '.join(STAGES)}")
    force = set(STAGES[STAGES.index(from_stage) :]) if from_stage else set()
    runner = Runner(config, force=force, **({"log": log} if log else {}))
    config.out.mkdir(parents=True, exist_ok=True)
    rows = run_loop(runner)
    control = next((a.name for a in config.arms if a.mine is None), None)
    return write_summary(Path(config.out), rows, control, config.source,
                         float(config.evaluate["score_threshold"]))  # fmt: skip
