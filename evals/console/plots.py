"""The console's charts as inline SVG, drawn by matplotlib on the server (no JS library)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: without the XML prolog and doctype


def cost_quality(points: Sequence[tuple[str, float, float]]) -> str:
    """Accuracy against cost per item, one labelled point per run."""
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    for label, cost, accuracy in points:
        axes.scatter([cost], [accuracy], s=28)
        axes.annotate(
            label, (cost, accuracy), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
    axes.set_xlabel("USD per item")
    axes.set_ylabel("accuracy")
    axes.grid(alpha=0.3)
    return _svg(figure)


def share_over_time(buckets: Sequence[str], shares: Mapping[str, Sequence[float]]) -> str:
    """Stacked call share per model over time buckets: a collapse onto one model shows."""
    figure, axes = plt.subplots(figsize=(6.4, 2.8))
    bottom = [0.0] * len(buckets)
    for model, values in shares.items():
        axes.bar(buckets, values, bottom=bottom, label=model)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_ylim(0, 1)
    axes.set_ylabel("share of calls")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.tick_params(axis="x", labelsize=7, rotation=30)
    return _svg(figure)
