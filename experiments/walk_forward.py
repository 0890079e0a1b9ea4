"""Walk-forward evaluation, the seeds' "retrained daily" (``make walkforward``, issue 12 item 3).

    .venv/bin/python experiments/walk_forward.py [--days 6] [--window 2] [--sft-steps 400] [--rl-steps 50]
                                                 [--every-s 30] [--val-hours 6] [--seed 0]
    .venv/bin/python experiments/walk_forward.py --preset standx_btc --window 2 --sft-steps 100 --rl-steps 30
                                                 # real data: train 01-05..01-06, test the whole of 01-07

``--preset standx_btc`` runs the same protocol on the real StandX recording (its hourly files grouped by UTC day;
``experiment=standx_btc``'s decisions, horizon and venue; names ``wf-standx_btc-d<k>-*``, tables
``walk_forward_standx_btc.*``). Its 49 h hold two full UTC days after a 2-h first day, so ``--window 2`` gives one
window: train on 01-05 .. 01-06, test on all of 01-07 (the main split tests only its last 10 h).

The demo's configuration (``experiment=demo``: 120-s horizon, tiny model, CPU) with decisions every ``--every-s``
seconds (30: half the demo's 15-s grid, see the budget below). One synthetic BTC market of ``--days`` UTC days (the
demo's parameters, ``data.synthetic.seed=--seed``) is simulated once: a synthetic market of n days is one continuous
process, so simulating each window's days separately would give other markets. Its files are those
``data=synthetic data.synthetic.n_days=<days>`` writes and reads (``data/raw/synthetic/seed<seed>-<hash>/``); each
window reads its days' files with ``data=files``.

Window k (k = w .. N-1, ``w = --window``) trains on days [k-w, k) and tests on day k. Its runs span days k-w .. k,
and its split fractions (``decisions.train_frac``, ``val_frac``; the test split is the rest) are computed from that
span (:func:`split_fractions`) so that:

- the test period starts at day k's 00:00 UTC (plus 1 ms against rounding): every test decision lies in day k;
- the validation period is the last ``--val-hours`` of day k-1 before an embargo of ``decisions.embargo_s``
  (360 s >= the 120-s horizon + 60-s adverse-selection look), so no training or validation reward window reaches
  day k; the training period is the rest of days [k-w, k), another embargo before the validation period.

Both are checked before a window trains, on the decisions the run will draw (:func:`check_window`), and after its
backtest, on the test decision times the backtest wrote. Features look back only (EWMA states start at day k-w).

Training: the first window as ``make demo`` (SFT ``--sft-steps`` steps at lr 3e-3 on the preset's labels: ex-post
best offsets, or its ``algo.label_teacher``'s answers; then DAPO ``--rl-steps`` steps at lr 1e-4 from it); every
later window continues DAPO for ``--rl-steps`` steps from the previous window's policy (``model.init_from``), on its
own days. The backtest (``evaluate.py``, test split = day k)
compares the window's policy with the best baseline chosen on that window's validation split, and with the policy
its training started from (the first window's SFT policy; later, the previous window's policy left as it was:
what retraining on the newest days adds). Nothing reads a test day before its window's backtest. SFT is not
repeated in later windows: its 400 steps cost more than three windows of DAPO here.

Budget (``make walkforward`` <= 35 min on the shared 2-core machine while others run heavy jobs): at load 7 on the
2 cores, SFT 400 steps took 510 s, a DAPO step 3.1 s and a greedy backtest of one policy over a day of 15-s decisions
(5,748) 86 s; every window backtests two policies (its own and the one it started from). SFT keeps the demo's 400
steps (its validation reward only moves after step 300), the grid is 30 s (2,874 test decisions a day) and DAPO
gets 50 steps per window (200 in all): 32 min wall at load 7-9 (measured). Simulating the market the first time
adds about 10 min at such load (6 days, with the incremental_book_L2 files the synthetic writer always writes);
later runs reuse its files.

Writes ``outputs/tables/walk_forward.{md,tex,csv,caption.txt}`` (one row per window and a pooled row: the paired
per-decision differences of all test days together) and ``outputs/tables/figures/walk_forward.{png,pdf}`` (test IS
per window of the policy, the validation-chosen best baseline and the market order, with 95% CIs). Runs are
named ``wf-d<k>-sft`` / ``wf-d<k>-dapo`` in the registry; backtests go to ``outputs/eval_walk_forward/day<k>/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from hyperdapo.data.sources import load_market, market_files
from hyperdapo.data.synthetic import synthetic_dir_name, write_synthetic_market
from hyperdapo.evaluation.figures import POLICY_COLOR, save_figure
from hyperdapo.evaluation.stats import mean_ci, paired_tests
from hyperdapo.evaluation.tables import write_table
from hyperdapo.execution.tape import DATE_IN_NAME, day_files
from hyperdapo.features.config import DecisionConfig
from hyperdapo.features.decision_set import US_PER_S, Split, draw_decisions
from hyperdapo.pipeline.config import compose_run_config

ASSET = "BTC"
DAY_US = 86_400 * US_PER_S
MARGIN_US = 1_000  # the test period starts 1 ms after day k's 00:00: float fractions cannot pull it into day k-1
PRESETS = {  # the base overrides of every run, and the data source a window's files are given to
    "demo": (["experiment=demo"], "data=files"),  # the demo's synthetic market parameters, decisions, horizon, model
    "standx_btc": (["experiment=standx_btc"], None),  # the real StandX BTC recording (data=standx: day by day)
}


@dataclass(frozen=True)
class Window:
    """Train (and validate) on ``train_days``, test on ``test_day``; days are indices from the market's first day."""

    train_days: tuple[int, ...]
    test_day: int

    @property
    def days(self) -> tuple[int, ...]:
        return (*self.train_days, self.test_day)


def plan_windows(n_days: int, window: int) -> list[Window]:
    """Every window of ``window`` training days followed by its test day, over ``n_days`` days (test days
    ``window .. n_days - 1``)."""
    if not 1 <= window < n_days:
        raise ValueError(f"--window {window} with --days {n_days}: need 1 <= window < days")
    return [Window(tuple(range(k - window, k)), k) for k in range(window, n_days)]


def split_fractions(start_us: int, end_us: int, test_start_us: int, val_s: float,
                    cfg: DecisionConfig) -> tuple[float, float]:
    """``(train_frac, val_frac)`` of a run whose book spans ``[start_us, end_us]`` (us) such that the test period
    starts ``MARGIN_US`` after ``test_start_us``, the validation period is the ``val_s`` seconds before an embargo
    of ``cfg.embargo_s`` ending there, and the training period the rest before another embargo (the fractions are
    of the span after ``cfg.warmup_s``, as :func:`~hyperdapo.features.decision_set.split_bounds_us` cuts it)."""
    first_us = start_us + int(cfg.warmup_s * US_PER_S)
    gap_us = int(cfg.embargo_s * US_PER_S)
    span_us = end_us - first_us
    val_end_us = test_start_us + MARGIN_US - gap_us
    train_end_us = val_end_us - int(val_s * US_PER_S) - gap_us
    if not first_us < train_end_us < val_end_us < end_us:
        raise ValueError(f"no room for training, {val_s:g} s of validation and the embargoes before the test day "
                         f"in the span {start_us}..{end_us} us")
    return (train_end_us - first_us) / span_us, (val_end_us - train_end_us) / span_us


def check_window(cfg: DecisionConfig, start_us: int, end_us: int, test_start_us: int) -> dict[str, int]:
    """The decisions a run over the book span ``[start_us, end_us]`` draws with ``cfg`` (the pipeline's draw),
    checked: every test decision's reward window ``[t, t + horizon + adverse look]`` lies in the test day
    ``[test_start_us, test_start_us + 1 day)``, every training and validation reward window ends before
    ``test_start_us``, and no split is empty. Returns the number of decisions per split."""
    decisions, _ = draw_decisions(ASSET, start_us, end_us, cfg)
    ts_us, split = decisions.ts_us, decisions.split
    reward_end_us = ts_us + int(cfg.window_s * US_PER_S)
    test = split == Split.TEST.value
    counts = {s.value: int((split == s.value).sum()) for s in Split}
    if min(counts.values()) == 0:
        raise ValueError(f"an empty split: {counts}")
    if ts_us[test].min() < test_start_us or reward_end_us[test].max() > test_start_us + DAY_US:
        raise ValueError("a test decision's reward window is outside the test day")
    if reward_end_us[~test].max() > test_start_us:
        raise ValueError("a training or validation reward window reaches into the test day")
    return counts


def window_frame(result: dict, decisions: pd.DataFrame, policy: str, start: str) -> pd.DataFrame:
    """Per test decision of one backtest (``results.json``, ``decisions.parquet``): the IS (bps) of the policy, of the
    validation-chosen best baseline, of the market order and of the policy its training started from."""
    best = result["best_baseline"]["name"]
    return pd.DataFrame({"ts_us": decisions["ts_us"], "policy": decisions[f"is_bps_{policy}"],
                         "best": decisions[f"is_bps_{best}"], "market": decisions["is_bps_market"],
                         "start": decisions[f"is_bps_{start}"]})


def table_row(frame: pd.DataFrame, n_comparisons: int, seed: int = 0) -> dict:
    """The policy's mean IS and its bootstrap 95% CI (bps) over one window's (or the pooled) test decisions, the best
    baseline's mean IS, and the paired tests of the policy against the best baseline and against its start,
    Bonferroni over ``n_comparisons``."""
    policy = frame["policy"].to_numpy()
    vs_best, vs_start = (paired_tests({"policy": policy}, frame[c].to_numpy(), seed, n_comparisons)["policy"]
                         for c in ("best", "start"))
    lo, hi = mean_ci(policy, seed)
    return {"n test": len(frame), "Policy IS [bps]": policy.mean(), "IS CI low [bps]": lo, "IS CI high [bps]": hi,
            "Best baseline IS [bps]": frame["best"].mean(), "Diff [bps]": vs_best["mean_diff_bps"],
            "Diff CI low [bps]": vs_best["ci_low"], "Diff CI high [bps]": vs_best["ci_high"],
            "p (t, Bonf.)": vs_best["t_p_bonf"], "p (Wilcoxon, Bonf.)": vs_best["wilcoxon_p_bonf"],
            "Diff vs start [bps]": vs_start["mean_diff_bps"], "p (t, Bonf.) vs start": vs_start["t_p_bonf"]}


def walk_forward_table(windows: list[Window], frames: list[pd.DataFrame], results: list[dict], policies: list[str],
                       day_names: list[str]) -> pd.DataFrame:
    """One row per window (train days, test day, the validation-chosen best baseline, :func:`table_row`, the
    policy's fill rate in %) and a pooled row over all test decisions (fill rate weighted by decisions);
    Bonferroni over the comparisons of the whole table (2 per row)."""
    m = 2 * (len(windows) + 1)
    rows = []
    for i, (w, frame, result, policy) in enumerate(zip(windows, frames, results, policies, strict=True)):
        rows.append({"Window": str(i + 1), "Train days": f"{day_names[w.train_days[0]]}..{day_names[w.train_days[-1]]}",
                     "Test day": day_names[w.test_day], "Best baseline (val)": result["best_baseline"]["name"],
                     **table_row(frame, m), "Fill rate [%]": result["metrics"][policy]["Fill rate [%]"]})
    n = np.array([r["n test"] for r in rows], dtype=float)
    fill = np.array([r["Fill rate [%]"] for r in rows])
    rows.append({"Window": "pooled", "Train days": "", "Test day": f"{len(windows)} days",
                 "Best baseline (val)": "per window", **table_row(pd.concat(frames, ignore_index=True), m),
                 "Fill rate [%]": float((fill * n).sum() / n.sum())})
    return pd.DataFrame(rows)


def walk_forward_figure(table: pd.DataFrame, frames: list[pd.DataFrame], caption: str) -> plt.Figure:
    """Test IS (bps, mean and bootstrap 95% CI) per window, and pooled over the windows, of the policy, the
    validation-chosen best baseline (named beside its point) and the market order."""
    frames = [*frames, pd.concat(frames, ignore_index=True)]
    x = np.arange(len(frames))
    fig, ax = plt.subplots(figsize=(1.5 * len(frames) + 1.5, 4.0), layout="constrained")
    series = (("policy", "policy (walk-forward DAPO)", POLICY_COLOR, "o"),
              ("best", "best baseline (chosen on validation)", "tab:blue", "s"),
              ("market", "market order", "tab:gray", "^"))
    for j, (col, label, color, marker) in enumerate(series):
        mean = np.array([f[col].mean() for f in frames])
        ci = np.array([mean_ci(f[col].to_numpy()) for f in frames])
        ax.errorbar(x + (j - 1) * 0.15, mean, yerr=np.abs(ci.T - mean), fmt=marker, color=color, capsize=3, lw=1.2,
                    label=label)
        if col == "best":
            for xi, yi, name in zip(x, mean, table["Best baseline (val)"], strict=True):
                ax.annotate(name, (xi, yi), xytext=(5, -3), textcoords="offset points", fontsize=7, color=color)
    short = lambda day: day[5:]  # noqa: E731  (MM-DD)
    ticks = [f"test {short(t)}\ntrain {short(d[:10])}..{short(d[-10:])}" if d else f"pooled\n{t}"
             for t, d in zip(table["Test day"], table["Train days"], strict=True)]
    ax.set_xticks(x, ticks, fontsize=8)
    ax.axvline(len(frames) - 1.5, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("walk-forward window")
    ax.set_ylabel("implementation shortfall [bps]\n(lower is better)")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(caption, fontsize=7, wrap=True)
    return fig


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], check=True)


def day_start_us(day: dt.date) -> int:
    """00:00 UTC of ``day`` in us since the epoch."""
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * US_PER_S


def market_days(preset: str, n_days: int, common: list[str],
                market: tuple[str, ...] = ()) -> tuple[dict[str, list[tuple[Path, ...]]], list[dt.date]]:
    """The book and trade files of each UTC day, and the days. ``demo``: the market ``data=synthetic
    data.synthetic.n_days=<n_days>`` reads (same parameters, same directory), simulated once (skipped when its files
    exist), ``market`` overrides of that market only (e.g. ``scenario=regime_switch``: the runs then read its files);
    ``standx_btc``: the recording's hourly files grouped by the date in their names (``n_days`` unused)."""
    if preset == "demo":
        cfg = compose_run_config([*PRESETS[preset][0], f"data.synthetic.n_days={n_days}", *common, *market])
        out = Path(cfg.data.raw_dir) / "synthetic" / synthetic_dir_name(cfg.data.synthetic)
        paths = write_synthetic_market(cfg.asset, cfg.data.synthetic, out)
        first = dt.date.fromisoformat(cfg.data.synthetic.start_date)
        return ({"book": [(p,) for p in paths["book_snapshot_25"]], "trades": [(p,) for p in paths["trades"]]},
                [first + dt.timedelta(days=d) for d in range(n_days)])
    cfg = compose_run_config([*PRESETS[preset][0], *common])
    days = day_files(market_files(cfg.asset, cfg.data))
    dates = [dt.date(*map(int, DATE_IN_NAME.search(books[0].name).groups())) for books, _ in days]
    return {"book": [books for books, _ in days], "trades": [trades for _, trades in days]}, dates


def window_overrides(w: Window, preset: str, files: dict[str, list[tuple[Path, ...]]], days: list[dt.date],
                     val_hours: float, common: list[str]) -> tuple[list[str], dict[str, int]]:
    """The ``train.py`` / ``evaluate.py`` overrides of one window (the files of its days, its split fractions),
    checked by :func:`check_window`; and its number of decisions per split."""
    data = [f"data.files.{kind}=[{','.join(str(p) for d in w.days for p in files[kind][d])}]"
            for kind in ("book", "trades")]
    preset_args, source = PRESETS[preset]
    base = [*preset_args, *([source] if source else []), *data, *common]
    cfg = compose_run_config(base)
    book = load_market(cfg.asset, cfg.data).book  # the span the runs see (book and trades cut to what both cover)
    start_us, end_us = int(book.ts_us[0]), int(book.ts_us[-1])
    test_start_us = day_start_us(days[w.test_day])
    train_frac, val_frac = split_fractions(start_us, end_us, test_start_us, val_hours * 3600, cfg.decisions)
    overrides = [*base, f"decisions.train_frac={train_frac!r}", f"decisions.val_frac={val_frac!r}"]
    return overrides, check_window(compose_run_config(overrides).decisions, start_us, end_us, test_start_us)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                    help="demo: one synthetic market of --days days; standx_btc: the real StandX BTC recording")
    ap.add_argument("--days", type=int, default=6, help="synthetic days N (demo)")
    ap.add_argument("--market", nargs="*", default=[],
                    help="overrides of the synthetic market only (demo), e.g. scenario=regime_switch "
                         "data.synthetic.scenario.at_frac=0.5: a regime change to walk across")
    ap.add_argument("--window", type=int, default=2, help="training days w per window")
    ap.add_argument("--sft-steps", type=int, default=400, help="SFT steps of the first window")
    ap.add_argument("--rl-steps", type=int, default=50, help="DAPO steps per window")
    ap.add_argument("--every-s", type=float, default=30.0, help="decision grid step in seconds (the demo's: 15)")
    ap.add_argument("--val-hours", type=float, default=6.0, help="validation: the last hours before the test day")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--registry", default="outputs/models")
    ap.add_argument("--out", default="outputs/tables")
    args = ap.parse_args()
    t0 = time.perf_counter()
    common = [f"seed={args.seed}", f"registry_dir={args.registry}", f"decisions.every_s={args.every_s:g}"]
    dec = compose_run_config([*PRESETS[args.preset][0], *common]).decisions
    files, days = market_days(args.preset, args.days, common, tuple(args.market))
    windows = plan_windows(len(days), args.window)
    day_names = [d.isoformat() for d in days]
    tag = ("" if args.preset == "demo" else f"-{args.preset}") + ("-market" if args.market else "")  # beside the demo's
    stem = f"walk_forward{tag.replace('-', '_')}"
    market = (f"one synthetic BTC market of {len(days)} UTC days (seed {args.seed}"
              + (f", market overrides {' '.join(args.market)}" if args.market else "")
              + "; the demo's configuration: hyperliquid fees, trade-through fills" if args.preset == "demo" else
              f"the real StandX BTC-USD recording, UTC days {day_names[0]} .. {day_names[-1]} (the first partial; "
              "experiment=standx_btc: fees assumed equal to Hyperliquid's")
    root, run_dirs = Path(args.registry) / ASSET, Path("outputs/runs") / ASSET / "walk_forward" / time.strftime(
        "%Y-%m-%d_%H-%M-%S")
    frames, results, policies = [], [], []
    start = None  # the registered policy the next window's training starts from
    for w in windows:
        overrides, counts = window_overrides(w, args.preset, files, days, args.val_hours, common)
        print(f"window: train {day_names[w.train_days[0]]}..{day_names[w.train_days[-1]]}, test "
              f"{day_names[w.test_day]}; decisions {counts}", flush=True)
        name = f"wf{tag}-d{w.test_day}"
        train = ["train.py", *overrides, "overwrite=true"]
        if start is None:
            run([*train, "algo=sft", f"trainer.max_steps={args.sft_steps}", "optim.lr=3e-3", f"run_name={name}-sft",
                 f"hydra.run.dir={run_dirs / f'{name}-sft'}"])
            start = root / f"{name}-sft"
        run([*train, "algo=dapo", "algo.sft_warmup_steps=0", f"trainer.max_steps={args.rl_steps}", "optim.lr=1e-4",
             "algo.max_gen_batches=32", f"model.init_from={start}", f"run_name={name}-dapo",
             f"hydra.run.dir={run_dirs / f'{name}-dapo'}"])
        out = Path(f"outputs/eval_walk_forward{tag}") / f"day{w.test_day}"
        run(["evaluate.py", *overrides, "evaluate.policy=latest", f"evaluate.policies=[{root / f'{name}-dapo'}]",
             f"evaluate.out_dir={out}",
             f"hydra.run.dir={out / 'hydra'}"])
        result, decisions = json.loads((out / "results.json").read_text()), pd.read_parquet(out / "decisions.parquet")
        test_start_us = day_start_us(days[w.test_day])
        # the run drops planned decisions whose reward window touches a book gap (decisions.max_gap_s), never adds
        if len(decisions) > counts["test"] or not decisions["ts_us"].between(test_start_us,
                                                                             test_start_us + DAY_US - 1).all():
            raise RuntimeError(f"{out}: the backtest's test decisions are not among the {counts['test']} planned in "
                               f"{day_names[w.test_day]}")
        print(f"window test day {day_names[w.test_day]}: {len(decisions)} of {counts['test']} planned decisions "
              "(the rest touch a book gap)", flush=True)
        frames.append(window_frame(result, decisions, f"{name}-dapo", start.name))
        results.append(result)
        policies.append(f"{name}-dapo")
        start = root / f"{name}-dapo"
    table = walk_forward_table(windows, frames, results, policies, day_names)
    minutes = (time.perf_counter() - t0) / 60
    caption = (f"Walk-forward on {market}, {dec.horizon_s:g}-s horizon, tiny model, CPU; "
               f"decisions every {dec.every_s:g} s). Window k trains on days [k-{args.window}, k) and tests on day k "
               f"(the whole UTC day); its validation split is the last {args.val_hours:g} h before day k, with "
               f"{dec.embargo_s:g}-s embargoes (>= the {dec.horizon_s:g}-s horizon + {dec.adverse_horizon_s:g}-s "
               "adverse look) before and after it. Window 1: SFT "
               f"{args.sft_steps} steps then DAPO {args.rl_steps} steps; every later window continues DAPO "
               f"{args.rl_steps} steps from the previous window's policy. IS of greedy answers on the test day "
               "(bps of the arrival mid, fees and cleanup included, lower is better) with its bootstrap 95% CI; best "
               "baseline chosen on the window's validation split (oracle excluded); Diff = IS(policy) - IS(best "
               "baseline), paired over decisions, bootstrap 95% CI; Diff vs start = IS(policy) - IS(the policy its "
               "training started from: SFT in window 1, else the previous window's policy, not retrained); pooled: "
               "the per-decision differences of all test days together; paired t / Wilcoxon p Bonferroni over the "
               f"{2 * (len(windows) + 1)} comparisons of the table. Wall time {minutes:.0f} min.")
    write_table(table, Path(args.out), stem, caption, policies=())
    figure_caption = (f"Test IS per walk-forward window (bps of the arrival mid, fees and cleanup included; mean and "
                      f"bootstrap 95% CI) on {market}; "
                      f"decisions every {dec.every_s:g} s. Window k "
                      f"trains on days [k-{args.window}, k) (window 1: SFT {args.sft_steps} + DAPO {args.rl_steps} "
                      f"steps; later windows: DAPO {args.rl_steps} steps continued from the previous window's policy) "
                      f"and tests on day k; best baseline chosen on each window's validation split (the last "
                      f"{args.val_hours:g} h before day k). Pooled: all test decisions.")
    save_figure(walk_forward_figure(table, frames, figure_caption), Path(args.out) / "figures" / stem)
    print(Path(args.out, f"{stem}.md").read_text())
    print(f"walk-forward: {minutes:.1f} min")


if __name__ == "__main__":
    main()
