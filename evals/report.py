"""Reports of stored runs: JSON + markdown summaries, comparisons and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from signoria.agents.pricing import format_usd
from signoria.evals.metrics import paired, run_metrics
from signoria.orchestrator.storage import Store


def summarise(store: Store, run_id: str) -> dict[str, Any]:
    run = store.require_run(run_id)
    metrics = run_metrics(store.items(run_id))
    return {
        "run": run_id,
        "pipeline": run.pipeline,
        "benchmark": run.benchmark,
        "data": run.data_path,
        "status": run.status,
        **metrics,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _truncated(summary: dict[str, Any]) -> str:
    share = summary["truncated_share"]
    if share is None:
        return "unknown (no finish reasons recorded)"
    return f"{summary['truncated']} ({_pct(share)})"


def markdown(summary: dict[str, Any]) -> str:
    ci = summary["accuracy_ci95"]
    lat = summary["latency_s"]
    lines = [
        f"# Run {summary['run']}",
        "",
        f"- pipeline: `{summary['pipeline']}`, benchmark: `{summary['benchmark']}`, "
        f"data: `{summary['data']}`, status: {summary['status']}",
        f"- items: {summary['n']} ({summary['failed']} failed)",
        f"- accuracy: {_pct(summary['accuracy'])}"
        + (f" (95% Wilson CI {_pct(ci[0])} - {_pct(ci[1])})" if ci else ""),
        f"- cost: {format_usd(summary['cost'])}",
        f"- latency per item: p50 {_secs(lat['p50'])}, p90 {_secs(lat['p90'])}, "
        f"p99 {_secs(lat['p99'])}",
        f"- calls: {summary['calls']}, tokens in/out: {summary['tokens_in']}/"
        f"{summary['tokens_out']}",
        f"- truncated answers (cut at max_tokens): {_truncated(summary)}",
        "",
        "| model | call share |",
        "|---|---|",
        *(f"| {name} | {_pct(share)} |" for name, share in summary["call_share"].items()),
    ]
    return "\n".join(lines) + "\n"


def paired_with_first(store: Store, runs: list[str]) -> list[dict[str, Any]]:
    """Each run after the first against the first (the baseline), item for item."""
    if len(runs) < 2:
        return []
    baseline = store.items(runs[0])
    return [
        {"baseline": runs[0], "run": run, **paired(baseline, store.items(run))} for run in runs[1:]
    ]


def paired_table(pairs: list[dict[str, Any]]) -> str:
    lines = [
        "| run vs baseline | common items | both / only run / only baseline / neither "
        "| difference (95% CI) | McNemar p | latency ratio (mean, p50) |",
        "|---|---|---|---|---|---|",
    ]
    for p in pairs:
        ci = p["difference_ci95"]
        diff = "-" if p["difference"] is None else f"{100 * p['difference']:+.1f} pts"
        if ci:
            diff += f" ({100 * ci[0]:+.1f} to {100 * ci[1]:+.1f})"
        ratios = [p["latency_ratio_mean"], p["latency_ratio_p50"]]
        lat = ", ".join("-" if r is None else f"{r:.2f}x" for r in ratios)
        lines.append(
            f"| {p['run']} vs {p['baseline']} | {p['n']} | {p['both_right']} / {p['only_run']} / "
            f"{p['only_baseline']} / {p['neither']} | {diff} | {p['mcnemar_p']:.3g} | {lat} |"
        )
    return "\n".join(lines) + "\n"


def compare_table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| run | pipeline | benchmark | n | accuracy (95% CI) | truncated | cost | p50 latency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        ci = s["accuracy_ci95"]
        acc = _pct(s["accuracy"]) + (f" ({_pct(ci[0])}-{_pct(ci[1])})" if ci else "")
        lines.append(
            f"| {s['run']} | {s['pipeline']} | {s['benchmark']} | {s['n']} | {acc} | "
            f"{_pct(s['truncated_share'])} | {format_usd(s['cost'])} | "
            f"{_secs(s['latency_s']['p50'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_cost(summaries: list[dict[str, Any]], path: Path) -> None:
    """Every run as a point with its CI; runs of unknown cost are listed, not plotted at 0.

    When every run cost nothing (local models) cost cannot separate them, so the x axis
    becomes the median latency per item, which is what those runs spend instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [s for s in summaries if s["accuracy"] is not None]
    known = [s for s in scored if s["cost"] is not None]
    unknown = len(scored) - len(known)
    free = bool(known) and all(s["cost"] == 0 for s in known)
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in known:
        x = s["latency_s"]["p50"] if free else s["cost"]
        low, high = s["accuracy_ci95"]
        yerr = [[s["accuracy"] - low], [high - s["accuracy"]]]
        ax.errorbar(x, s["accuracy"], yerr=yerr, fmt="o", capsize=3)
        ax.annotate(
            f"{s['pipeline']}\n{s['run']}",
            (x, s["accuracy"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("median latency per item (s); every run cost $0" if free else "total cost (USD)")
    ax.margins(x=0.15)
    ax.set_xlim(left=0)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(0, 1)
    title = "accuracy vs latency" if free else "accuracy vs cost"
    if unknown:
        title += f" ({unknown} run(s) of unknown cost not shown)"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_call_share(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    share = summary["call_share"]
    fig, ax = plt.subplots(figsize=(6, 1 + 0.4 * max(1, len(share))))
    ax.barh(list(share), list(share.values()))
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of model calls")
    ax.set_title(f"call share, run {summary['run']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(store: Store, run_id: str, out: Path) -> dict[str, Path]:
    """summary.json, summary.md, call_share.png and accuracy_vs_cost.png (every run of the
    same benchmark in the database, so runs are compared where they can be)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(store, run_id)
    peers = [
        summarise(store, r.id)
        for r in store.runs(kind="eval")
        if r.benchmark == summary["benchmark"]
    ]
    files = {
        "json": out / "summary.json",
        "markdown": out / "summary.md",
        "accuracy_vs_cost": out / "accuracy_vs_cost.png",
        "call_share": out / "call_share.png",
    }
    files["json"].write_text(json.dumps(summary, indent=2))
    files["markdown"].write_text(
        markdown(summary) + "\n## All runs of this benchmark\n\n" + compare_table(peers)
    )
    plot_accuracy_vs_cost(peers, files["accuracy_vs_cost"])
    plot_call_share(summary, files["call_share"])
    return files
