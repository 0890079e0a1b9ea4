"""Figures (matplotlib, Agg): learning curves, strategy comparison, cumulative PnL.

Each ``plot``-style function returns an open :class:`~matplotlib.figure.Figure`; :func:`save_figure` writes it
as PNG and as PDF beside it (each atomically, via :func:`hyperdapo.atomic.atomic_path`) and closes it.
Colours: one per run or strategy, the same in every panel of a figure (and in the strategy figures of one
evaluation, which get the same names in the same order); the policies (``llm``, or the run names of several) are
reds (the first ``tab:red``) and drawn on top.
Every figure has one legend for all its panels (``fig.legend``), below or beside the axes. Step and decision axes
have integer ticks only.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

import matplotlib

from hyperdapo.atomic import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from hyperdapo.evaluation.stats import identical_to  # noqa: E402

POLICIES = ("llm",)
POLICY_COLOR = "tab:red"
POLICY_COLORS = (POLICY_COLOR, "darkred", "lightcoral", "orangered", "maroon", "salmon")  # several policies
PALETTE = tuple(c for c in matplotlib.colormaps["tab10"].colors if c != matplotlib.colors.to_rgb(POLICY_COLOR))
MIN_SMOOTH_POINTS = 10  # shorter series are drawn raw, with markers
DPI = 120


def colors(names: Sequence[str], policies: Sequence[str] = POLICIES) -> dict[str, object]:
    """One colour per name: the policies reds (``POLICY_COLORS`` in order), the others tab10 (without red) in order
    of first appearance (each cycling when there are more of them)."""
    palette, reds = cycle(PALETTE), cycle(POLICY_COLORS)
    return {n: next(reds) if n in policies else next(palette) for n in dict.fromkeys(names)}


def save_figure(fig: Figure, path: Path | str) -> list[Path]:
    """Write ``fig`` as ``<path>.png`` (``DPI`` dots per inch) and ``<path>.pdf`` (any suffix of ``path`` is
    replaced), each atomically; close it. Returns the two paths, PNG first."""
    paths = [Path(path).with_suffix(".png"), Path(path).with_suffix(".pdf")]
    try:
        for p in paths:
            with atomic_path(p) as tmp:
                fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=p.suffix.lstrip("."))
    finally:
        plt.close(fig)
    return paths


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, bias-corrected at the start (pandas
    ``ewm(adjust=True)``), so the first value is the first raw value; same length and units as ``values``."""
    return pd.Series(np.asarray(values, dtype=float)).ewm(span=span, adjust=True).mean().to_numpy()


def smoothing_span(n_points: int) -> int:
    """EMA span for a series of ``n_points`` logged values: a tenth of the series, between 2 and 50."""
    return int(np.clip(n_points // 10, 2, 50))


def step_offsets(last_steps: Sequence[float]) -> list[float]:
    """Offsets that put ordered runs on one continuous step axis: run ``i`` is shifted by the sum of the last
    steps of the runs before it (run 0 by 0), so each run starts where the previous one ended."""
    return [float(x) for x in np.concatenate([[0.0], np.cumsum(last_steps)[:-1]])] if len(last_steps) else []


def read_runs(runs: Sequence[tuple[str, Path]], continuous: bool) -> list[tuple[str, pd.DataFrame, float]]:
    """``(label, metrics, offset)`` per run of Lightning CSVLogger ``metrics.csv`` files (rows are sparse: NaN
    where a metric was not logged); ``offset`` is the run's shift on the step axis (0 unless ``continuous``)."""
    frames = [(label, pd.read_csv(csv)) for label, csv in runs]
    offsets = step_offsets([f["step"].max() for _, f in frames]) if continuous else [0.0] * len(frames)
    return [(label, frame, off) for (label, frame), off in zip(frames, offsets, strict=True)]


def _legend(fig: Figure, handles: list, where: str = "lower") -> None:
    fig.legend(handles=handles, loc=f"outside {where} center" if where == "lower" else "outside right upper",
               ncol=min(len(handles), 4) if where == "lower" else 1, fontsize=8, frameon=False)


def learning_curves(runs: Sequence[tuple[str, Path]], keys: Sequence[str], continuous: bool = False) -> Figure:
    """One panel per metric key (e.g. ``train/reward_mean`` in bps, ``train/loss``; two panels a row) over the
    training step (one SFT/DPO batch or one RL rollout batch), one line per run in one colour across the panels.
    ``runs`` is an ordered list of
    ``(label, metrics.csv)``; with ``continuous`` each later run continues the previous one's step axis (SFT then
    DAPO as one curve) and a dashed vertical line marks each switch. ``train/*`` series of at least
    ``MIN_SMOOTH_POINTS`` points are drawn smoothed (EMA, :func:`smoothing_span`) over the faint raw values."""
    data = read_runs(runs, continuous)
    palette = colors([label for label, _, _ in data], policies=())
    ncols = min(2, len(keys))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.0 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(keys):]:
        ax.remove()
    for ax, key in zip(axes.flat, keys, strict=False):
        smoothed = False
        for label, frame, offset in data:
            if key not in frame:
                continue
            s = frame[["step", key]].dropna()
            x, y, c = s["step"].to_numpy() + offset, s[key].to_numpy(), palette[label]
            if key.startswith("train/") and len(s) >= MIN_SMOOTH_POINTS:
                ax.plot(x, y, color=c, alpha=0.25, lw=0.7, label=f"_{label} raw")
                ax.plot(x, ema(y, smoothing_span(len(y))), color=c, lw=1.6, label=label)
                smoothed = True
            else:
                ax.plot(x, y, color=c, lw=1.2, marker="." if len(s) < 30 else None, label=label)
        for _, _, offset in data[1:] if continuous else []:
            ax.axvline(offset, color="0.3", ls="--", lw=0.9, label="_switch")
        ax.set_title(f"{key} (EMA, raw faint)" if smoothed else key, fontsize=9)
        ax.set_xlabel("training step" + (" (runs in sequence)" if continuous and len(data) > 1 else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=palette[label], lw=1.6, label=label) for label, _, _ in data]
    if continuous and len(data) > 1:
        handles.append(Line2D([], [], color="0.3", ls="--", lw=0.9, label="next run starts"))
    _legend(fig, handles)
    return fig


def strategy_bars(names: Sequence[str], means: np.ndarray, ci: np.ndarray, ylabel: str, better: str = "lower",
                  policies: Sequence[str] = POLICIES) -> Figure:
    """Bars of a per-strategy mean with 95% CI error bars (``ci`` is (S, 2), same units as ``means``); the
    policies red, hatched and outlined; the y label ends with ``(<better> is better)``."""
    palette = colors(names, policies)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(names)), 3.5), layout="constrained")
    err = np.abs(np.stack([means - ci[:, 0], ci[:, 1] - means]))
    bars = ax.bar(names, means, yerr=err, capsize=3, color=[palette[n] for n in names], alpha=0.85)
    for bar, name, tick in zip(bars, names, ax.get_xticklabels(), strict=True):
        if name in policies:
            bar.set(hatch="//", edgecolor="black", linewidth=1.2, alpha=1.0)
            tick.set_fontweight("bold")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(f"{ylabel}\n({better} is better)")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(axis="y", alpha=0.3)
    return fig


TIE_MARKERS = ("o", "s", "^", "D", "v")
DASH_PT = 4.0  # length of one dash of a tie's line, in line widths


def tie_style(rank: int, group: int) -> dict[str, object]:
    """Line style of the ``rank``-th (1-based) of the ``group - 1`` series drawn over an identical first one: dashes
    ``DASH_PT`` long every ``DASH_PT * group``, shifted by rank, so the first line shows in the gaps and each tie in
    its own slot; a marker shape per rank."""
    return {"ls": (DASH_PT * (rank - 1), (DASH_PT, DASH_PT * (group - 1))),
            "marker": TIE_MARKERS[(rank - 1) % len(TIE_MARKERS)], "markersize": 3}


def cumulative_pnl(pnl: dict[str, np.ndarray], policies: Sequence[str] = POLICIES) -> Figure:
    """Cumulative per-decision PnL (USD) of each strategy over decisions 1..D in time order; the policies thick, on
    top. A series equal on every decision to an earlier one would hide it: it is drawn above, dashed with markers
    (:func:`tie_style`: the dashes of several ties interleave, so each stays visible), and labelled
    ``<name> (identical to <earlier>)``."""
    palette = colors(list(pnl), policies)
    fig, ax = plt.subplots(figsize=(7.5, 3.5), layout="constrained")
    for k, (name, series) in enumerate(pnl.items()):
        top = name in policies
        earlier = identical_to(dict(list(pnl.items())[:k + 1]), name)
        tie = tie_style(len(earlier), len(identical_to(pnl, name)) + 1) if earlier else {}
        ax.plot(np.arange(1, len(series) + 1), np.cumsum(series), color=palette[name], lw=2.2 if top else 1.0,
                zorder=4 if earlier else 3 if top else 2, **tie,
                label=f"{name} (identical to {', '.join(earlier)})" if earlier else name)
    ax.axhline(0, color="black", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("decision (test split, time order)")
    ax.set_ylabel("cumulative PnL vs arrival mid [USD]\n(higher is better)")
    ax.grid(alpha=0.3)
    _legend(fig, ax.get_lines()[:len(pnl)], where="right")
    return fig


def regime_lines(means: dict[str, dict[str, np.ndarray]], buckets: dict[str, Sequence[str]],
                 policies: Sequence[str] = POLICIES) -> Figure:
    """One panel per market regime (``means[regime][strategy]``: (K,) mean IS in bps over the regime's K
    buckets, ``buckets[regime]`` their axis labels, low to high): a line per strategy across the buckets, the
    policies red, thick and on top; a NaN (empty bucket) leaves a gap."""
    names = list(dict.fromkeys(s for by in means.values() for s in by))
    palette = colors(names, policies)
    fig, axes = plt.subplots(1, len(means), figsize=(3.2 * len(means), 3.2), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, (regime, by) in zip(axes[0], means.items(), strict=True):
        x = np.arange(len(buckets[regime]))
        for name, y in by.items():
            top = name in policies
            ax.plot(x, y, color=palette[name], marker="o", lw=2.2 if top else 1.0, zorder=3 if top else 2, label=name)
        ax.set_xticks(x, buckets[regime])
        ax.set_xlim(-0.4, len(x) - 0.6)  # room for the edge labels
        ax.set_title(regime, fontsize=9)
        ax.axhline(0, color="black", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("implementation shortfall [bps]\n(lower is better)")
    _legend(fig, [Line2D([], [], color=palette[n], marker="o", lw=2.2 if n in policies else 1.0, label=n)
                  for n in names])
    return fig
