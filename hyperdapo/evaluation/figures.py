"""Figures (matplotlib, Agg, PNG, atomic writes): learning curves, strategy comparison, cumulative PnL."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from hyperdapo.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip("."))
    plt.close(fig)
    return path


def learning_curves(metrics_csvs: dict[str, Path], keys: list[str], path: Path) -> Path:
    """One panel per metric key (e.g. ``train/reward_mean``, ``val/reward_mean``) over step, one line per run."""
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for label, csv in metrics_csvs.items():
            frame = pd.read_csv(csv)
            if key in frame:
                s = frame[["step", key]].dropna()
                ax.plot(s["step"], s[key], marker="." if len(s) < 30 else None, label=label)
        ax.set_title(key)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def strategy_bars(names: list[str], means: np.ndarray, ci: np.ndarray, path: Path, ylabel: str) -> Path:
    """Bars of a per-strategy mean with 95% CI error bars; ``ci`` is (S, 2)."""
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(names)), 3.5))
    err = np.abs(np.stack([means - ci[:, 0], ci[:, 1] - means]))
    ax.bar(names, means, yerr=err, capsize=3, color="tab:blue", alpha=0.8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=45)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def cumulative_pnl(pnl: dict[str, np.ndarray], path: Path) -> Path:
    """Cumulative per-decision PnL (USD) of each strategy, in decision order."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, series in pnl.items():
        ax.plot(np.cumsum(series), label=name, lw=2 if name == "llm" else 1)
    ax.set_xlabel("decision (test split, time order)")
    ax.set_ylabel("cumulative PnL vs arrival mid [USD]")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path)
