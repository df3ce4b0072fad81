"""Training configuration: CLI flags or a YAML file, one schema, saved with every run."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from flickermine.errors import ConfigError
from flickermine.models import DEFAULT_MODEL


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``RUN_DIR/config.yaml``).

    The learning rate follows ``lr_schedule`` when given — ``"LR:UNTIL,LR:UNTIL,..."``, each
    rate used until that iteration, the last one ending the run — else ``lr`` multiplied by
    ``gamma`` every ``step_size`` iterations (docs/method.md §6). The seed's schedules:

    * Dog baseline: ``lr_schedule: "1e-3:10000,1e-4:20000,1e-5:29000"``
    * Dog with hard negatives: ``lr_schedule: "1e-4:15000,1e-5:22000"``
    * Train: ``lr: 1e-3``, ``step_size: 10000``, ``gamma: 0.1``, ``iterations: 26000``
    """

    train: str = ""
    images: str = ""
    out: str = ""
    category: str | None = None
    model: str = DEFAULT_MODEL
    weights: str | None = "DEFAULT"
    iterations: int = 29000
    batch_size: int = 2
    lr: float = 1e-3
    lr_schedule: str | None = None
    step_size: int | None = None
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    min_size: int = 600
    max_size: int = 1000
    hflip: bool = True
    checkpoint_every: int = 1000
    log_every: int = 20
    val: str | None = None
    val_images: str | None = None
    val_every: int = 1000
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, str(f.type), getattr(self, f.name)))
        for name in (
            "iterations", "batch_size", "checkpoint_every", "log_every", "val_every", "min_size",
            "max_size",
        ):  # fmt: skip
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.max_size < self.min_size:
            raise ConfigError(
                f"max_size: expected >= min_size ({self.min_size}), got {self.max_size}"
            )
        if self.step_size is not None and self.step_size < 1:
            raise ConfigError(f"step_size: expected an integer >= 1, got {self.step_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr: expected > 0, got {self.lr}")
        if not self.gamma > 0:
            raise ConfigError(f"gamma: expected > 0, got {self.gamma}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: expected a value in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: expected >= 0, got {self.weight_decay}")
        schedule = self.schedule()
        if self.lr_schedule and schedule[-1][1] != self.iterations:
            # The schedule's last milestone ends the run.
            self.iterations = schedule[-1][1]

    def schedule(self) -> list[tuple[float, int]]:
        """``[(lr, until_iteration), ...]`` covering the whole run."""
        if self.lr_schedule:
            out = []
            for part in str(self.lr_schedule).split(","):
                m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*:\s*(\d+)\s*", part)
                if not m:
                    raise ConfigError(f"lr_schedule: expected LR:UNTIL pairs, got {part!r}")
                try:
                    rate = float(m.group(1))
                except ValueError:
                    raise ConfigError(f"lr_schedule: {m.group(1)!r} is not a number") from None
                if not rate > 0 or not math.isfinite(rate):
                    raise ConfigError(f"lr_schedule: learning rates must be > 0, got {part!r}")
                out.append((rate, int(m.group(2))))
            if any(b[1] <= a[1] for a, b in itertools.pairwise(out)) or out[0][1] < 1:
                raise ConfigError(f"lr_schedule: iterations must increase: {self.lr_schedule}")
            return out
        if self.step_size:
            out, lr, until = [], self.lr, 0
            while until < self.iterations:
                until = min(until + self.step_size, self.iterations)
                out.append((lr, until))
                lr *= self.gamma
            return out
        return [(self.lr, self.iterations)]

    def lr_at(self, iteration: int) -> float:
        """Learning rate of (0-based) ``iteration``."""
        for lr, until in self.schedule():
            if iteration < until:
                return lr
        return self.schedule()[-1][0]

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for YAML)."""
        return asdict(self)


#: Options earlier versions saved that no longer exist (``workers`` never had an effect).
_RETIRED = frozenset({"workers"})


def _coerce(name: str, declared: str, value: Any) -> Any:
    """``value`` as the field's declared type. YAML reads ``1e-3`` as text (its floats need a
    dot), so numbers written as text are accepted; anything else of the wrong type is an
    error naming the option."""
    optional = declared.endswith(" | None")
    base = declared.removesuffix(" | None")
    if (value is None and optional) or base not in ("bool", "int", "float", "str"):
        return value
    if base == "bool":
        if isinstance(value, bool):
            return value
    elif base in ("int", "float") and not isinstance(value, bool):
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, (int, float)) and math.isfinite(number):
            if base == "float":
                return float(number)
            if float(number).is_integer():
                return int(number)
    elif base == "str" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)  # e.g. a category given by its id
    article = "an integer" if base == "int" else "a number" if base == "float" else f"a {base}"
    raise ConfigError(f"{name}: expected {article}, got {value!r}")


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """A config from a YAML file (optional) with ``overrides`` (non-None values) on top."""
    values: dict[str, Any] = {}
    if path:
        import yaml

        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: cannot read config: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of option: value")
        known = {f.name for f in fields(TrainConfig)}
        for name in _RETIRED & set(loaded):  # in the config.yaml of runs by earlier versions
            del loaded[name]
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise ConfigError(f"{p}: unknown option(s) {', '.join(unknown)}")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the effective config as YAML."""
    import yaml

    from flickermine._atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
