"""The answer of a run: per round and arm, mean ± standard deviation over seeds, each arm
against the control, as ``summary.json``, ``summary.md`` and ``summary.png``."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from flickermine._atomic import atomic_path, atomic_write_text
from flickermine._system import pyplot

METRICS = ("ap", "ap50", "fp_per_image")
MINED = ("frames_added", "hard_negatives", "hard_positives", "hn_precision", "hp_precision",
         "pp_precision")  # fmt: skip


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(rows: list[dict[str, Any]], control: str | None) -> dict[str, Any]:
    """Mean and standard deviation per (round, arm); each arm's difference from the control
    arm of the same round, and whether it exceeds the seed-to-seed spread (the difference of
    the means is larger than the two standard deviations added: their one-sd intervals do not
    overlap)."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["round"], r["arm"]), []).append(r)
    table = []
    for (rnd, arm), rs in groups.items():
        entry: dict[str, Any] = {"round": rnd, "arm": arm, "seeds": len(rs)}
        for m in METRICS:
            entry[m], entry[f"{m}_sd"] = _mean_sd([float(r[m]) for r in rs])
        for m in MINED:
            vals = [float(r[m]) for r in rs if r.get(m) is not None]
            entry[m] = statistics.fmean(vals) if vals else None
        table.append(entry)
    comparisons = []
    by_key = {(e["round"], e["arm"]): e for e in table}
    for e in table:
        base = by_key.get((e["round"], control)) if control else None
        if base is None or e["arm"] == control:
            continue
        for m in METRICS:
            diff = e[m] - base[m]
            spread = e[f"{m}_sd"] + base[f"{m}_sd"]
            beyond = None if e["seeds"] < 2 or base["seeds"] < 2 else abs(diff) > spread
            comparisons.append({"round": e["round"], "arm": e["arm"], "metric": m,
                                "difference": diff, "spread": spread,
                                "beyond_spread": beyond})  # fmt: skip
    return {"table": table, "comparisons": comparisons, "control": control}


def _fmt(v: float | None, sd: float | None = None, pct: bool = True) -> str:
    if v is None:
        return "–"
    if pct:
        return f"{100 * v:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None else "")
    return f"{v:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def _count(v: float | None) -> str:
    return "–" if v is None else f"{v:g}"


def markdown(result: dict[str, Any], config: str, fp_threshold: float) -> str:
    """``summary.md``."""
    lines = [
        "# flickermine run: summary", "",
        f"Configuration: `{config}`. AP is COCO AP@[.5:.95] on the test part, in percent; "
        f"false positives per image at score ≥ {fp_threshold}; mean ± standard deviation over "
        "seeds. Mined figures are means over seeds; precisions are against the unlabelled "
        "part's ground truth where the configuration gives it (audit only, never trained on).",
        "",
        "| round | arm | seeds | AP | AP50 | FP / image | frames added | hard negatives "
        "| HN precision | hard positives | HP precision | PP precision |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for e in result["table"]:
        cells = [
            str(e["round"]), e["arm"], str(e["seeds"]), _fmt(e["ap"], e["ap_sd"]),
            _fmt(e["ap50"], e["ap50_sd"]), _fmt(e["fp_per_image"], e["fp_per_image_sd"], False),
            _count(e["frames_added"]), _count(e["hard_negatives"]),
            _fmt(e["hn_precision"], pct=False), _count(e["hard_positives"]),
            _fmt(e["hp_precision"], pct=False), _fmt(e["pp_precision"], pct=False),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if result["comparisons"]:
        lines += ["", f"Against the control arm (`{result['control']}`), same round: a "
                  "difference is *beyond the spread* when it exceeds the two arms' standard "
                  "deviations added.", "",
                  "| round | arm | metric | difference | spread | beyond the spread? |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for c in result["comparisons"]:
            pct = c["metric"] != "fp_per_image"
            verdict = {None: "n/a (one seed)", True: "**yes**", False: "no"}[c["beyond_spread"]]
            lines.append(
                f"| {c['round']} | {c['arm']} | {c['metric']} | "
                f"{'+' if c['difference'] >= 0 else ''}{_fmt(c['difference'], pct=pct)} | "
                f"{_fmt(c['spread'], pct=pct)} | {verdict} |"
            )
    lines += ["", "![AP and false positives per image by round](summary.png)", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], png: Path) -> bool:
    """AP and false positives per image per round, one line per arm with ±sd bars; False
    (nothing written) without matplotlib."""
    plt = pyplot("summary plot")
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    arms = list(dict.fromkeys(e["arm"] for e in result["table"]))
    for ax, (m, label, scale) in zip(axes, (("ap", "AP@[.5:.95] (%)", 100),
                                            ("fp_per_image", "false positives / image", 1)),
                                     strict=True):  # fmt: skip
        for k, arm in enumerate(arms):
            es = sorted((e for e in result["table"] if e["arm"] == arm), key=lambda e: e["round"])
            x = [e["round"] + (k - (len(arms) - 1) / 2) * 0.06 for e in es]
            ax.errorbar(x, [scale * e[m] for e in es], yerr=[scale * e[f"{m}_sd"] for e in es],
                        marker="o", capsize=3, label=arm)  # fmt: skip
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.set_xticks(sorted({e["round"] for e in result["table"]}))
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


def write_summary(
    out: Path, rows: list[dict[str, Any]], control: str | None, config: str, fp_threshold: float
) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md`` and ``summary.png`` into ``out``."""
    result = aggregate(rows, control)
    result["rows"] = rows
    result["config"] = config
    atomic_write_text(out / "summary.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "summary.md", markdown(result, config, fp_threshold))
    plot(result, out / "summary.png")
    return result
