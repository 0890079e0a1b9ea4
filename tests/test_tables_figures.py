"""Thesis tables and figures on hand-made inputs (no training): p-value floor and stars, policy rows first and
bold, raw CSVs, captions, LaTeX packages, parameter counts, PNG + PDF atomic writes, the continuous SFT -> DAPO
step axis, smoothing, the highlighted policy bar, and ``make tables`` collecting an evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from hyperdapo.evaluation.figures import (
    colors,
    cumulative_pnl,
    ema,
    learning_curves,
    save_figure,
    step_offsets,
    strategy_bars,
)
from hyperdapo.evaluation.regimes import Regime, regime_table
from hyperdapo.evaluation.stats import Comparison, paired_tests
from hyperdapo.evaluation.tables import (
    comparisons,
    execution_detail,
    execution_quality,
    fill_rate_comparison,
    format_p,
    format_params,
    headline,
    training_lineage,
    training_performance,
    write_table,
)

REPO = Path(__file__).resolve().parents[1]
NAMES = ["market", "twap", "llm", "oracle", "ppo"]


def metrics_of(name: str) -> dict[str, float]:
    k = NAMES.index(name)
    return {"Fill rate [%]": 10.0 * k + 0.04, "IS [bps]": 4.5 - k + 0.123, "Slippage [bps]": 1.0 + k / 3,
            "Price improvement [%]": 40.0, "Time to fill [s]": 33.25, "Adverse selection [bps]": -0.5,
            "Sharpe per decision": 1.234, "Max drawdown [USD]": 12.345, "Depth-short": 2.0 if name == "market" else 0.0,
            "Invalid": 3.0 if name == "llm" else 0.0, **({"Win rate [%]": 62.5} if name == "llm" else {})}


METRICS = {n: metrics_of(n) for n in NAMES}
CI = {n: (m["IS [bps]"] - 0.5, m["IS [bps]"] + 0.5) for n, m in METRICS.items()}
TESTS = {"market": {"mean_diff_bps": 2.1, "t_p": 2.85e-16, "t_p_bonf": 2.28e-15, "wilcoxon_p": 4e-4,
                    "wilcoxon_p_bonf": 0.032},
         "twap": {"mean_diff_bps": 0.7, "t_p": 0.0123, "t_p_bonf": 0.2, "wilcoxon_p": 0.004, "wilcoxon_p_bonf": 0.5}}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize(("p", "text"), [
    (2.85e-16, "<1e-4***"), (9.9e-5, "<1e-4***"), (4e-4, "4.0e-4***"), (0.004, "0.004**"), (0.01, "0.010*"),
    (0.0123, "0.012*"), (0.05, "0.050"), (0.2, "0.200"),
])
def test_p_values_have_a_floor_and_stars(p, text):
    assert format_p(p) == text


def test_execution_quality_formats_per_column_and_puts_the_policies_first_in_bold(tmp_path):
    paths = write_table(execution_quality(METRICS, CI, TESTS), tmp_path, "execution_quality", "Execution quality.",
                        policies=("llm", "ppo"))
    assert [p.name for p in paths] == ["execution_quality.md", "execution_quality.tex", "execution_quality.csv",
                                       "execution_quality.caption.txt"]
    md = paths[0].read_text().splitlines()
    rows = [line for line in md if line.startswith("| ") and "Strategy" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| **llm**", "| **ppo**", "| market", "| twap", "| oracle"]
    market = rows[2].strip("| ").split(" | ")
    # IS, CI and Diff in bps with 2 decimals; the p-values floored and starred; ppo's missing diff is a dash
    assert market == ["market", "4.62", "[4.12, 5.12]", "2.10", "<1e-4***", "<1e-4***", "4.0e-4***", "0.032*"]
    assert rows[1].split(" | ")[3] == "–"
    assert "* p < 0.05, \\*\\* p < 0.01" in md[0]  # the star legend, escaped inside the bold caption
    tex = paths[1].read_text()
    assert tex.splitlines()[0] == r"% requires \usepackage{booktabs}"
    assert r"\toprule" in tex and r"\textbf{llm} & \textbf{2.62}" in tex
    assert r"market & 4.62 & [4.12, 5.12] & 2.10 & $<$1e-4*** & $<$1e-4***" in tex


def test_csv_is_raw_and_read_by_plain_read_csv(tmp_path):
    write_table(execution_quality(METRICS, CI, TESTS), tmp_path, "q", "Execution quality.")
    frame = pd.read_csv(tmp_path / "q.csv")
    assert list(frame.columns) == ["Strategy", "IS [bps]", "IS CI low [bps]", "IS CI high [bps]", "Diff vs llm [bps]",
                                   "p (t)", "p (t, Bonf.)", "p (W)", "p (W, Bonf.)", "Identical"]
    assert frame.Strategy.tolist() == ["llm", "market", "twap", "oracle", "ppo"]  # only llm is a policy by default
    market = frame.set_index("Strategy").loc["market"]
    assert market["p (t)"] == 2.85e-16 and market["IS [bps]"] == pytest.approx(4.623)
    assert np.isnan(frame.set_index("Strategy").loc["llm", "p (t)"])
    assert (tmp_path / "q.caption.txt").read_text() == "Execution quality.\n"


def test_detail_and_fill_tables_have_their_own_columns_and_captions(tmp_path):
    write_table(execution_detail(METRICS), tmp_path, "execution_detail", "Execution detail by strategy.")
    fills = fill_rate_comparison({"BTC": {n: m["Fill rate [%]"] for n, m in METRICS.items()},
                                  "ETH": dict.fromkeys(METRICS, 50.0)})
    write_table(fills, tmp_path, "fill_rate", "Fill rate [%] by strategy and asset.")
    detail = pd.read_csv(tmp_path / "execution_detail.csv")
    assert list(detail.columns) == ["Strategy", "Fill rate [%]", "Slippage [bps]", "Price improvement [%]",
                                    "Time to fill [s]", "Adverse selection [bps]", "Sharpe per decision",
                                    "Max drawdown [USD]", "Win rate [%]", "Depth-short", "Invalid answers"]
    md = (tmp_path / "execution_detail.md").read_text().splitlines()
    assert md[4] == ("| **llm** | **20.0** | **1.67** | **40.0** | **33.2** | **-0.50** | **1.23** | **12.35** "
                     "| **62.5** | **0** | **3** |")
    # depth-short: an integer count; the win rate is a policy's only (a dash for a baseline)
    assert md[5] == "| market | 0.0 | 1.00 | 40.0 | 33.2 | -0.50 | 1.23 | 12.35 | – | 2 | 0 |"
    assert pd.read_csv(tmp_path / "fill_rate.csv")["Average [%]"].tolist()[0] == pytest.approx((20.04 + 50) / 2)
    captions = {p.read_text() for p in tmp_path.glob("*.caption.txt")}
    assert len(captions) == 2
    assert "Stars" not in (tmp_path / "fill_rate.md").read_text()  # the star legend only where there are p-values


def test_headline_table_against_the_traditional_average_by_hand(tmp_path):
    nan = float("nan")
    rows = {"market": (0.0, 4.0, nan, nan), "passive": (60.0, 2.0, 50.0, 100.0), "twap": (30.0, 3.0, 40.0, 50.0),
            "analytic": (99.0, 0.1, 99.0, 1.0), "a": (45.0, 1.5, 55.0, 60.0), "b": (30.0, 3.0, 45.0, 75.0)}
    keys = ("Fill rate [%]", "Slippage [bps]", "Price improvement [%]", "Time to fill [s]")
    metrics = {n: dict(zip(keys, v, strict=True)) for n, v in rows.items()}
    table = headline(metrics, ["a", "b"], ["market", "passive", "twap"]).set_index("Metric")  # analytic: not classic
    assert list(table.columns) == ["a", "b", "Traditional average", "a vs traditional average [%]",
                                   "b vs traditional average [%]"]
    # traditional averages: fill (0 + 60 + 30) / 3, slippage (4 + 2 + 3) / 3; price improvement and time to fill
    # over the two with a value (the market order has none)
    assert table["Traditional average"].tolist() == pytest.approx([30.0, 3.0, 45.0, 75.0])
    # a: fill +15 / 30, slippage 1.5 below 3, price improvement +10 / 45, time to fill 15 s below 75 s
    assert table["a vs traditional average [%]"].tolist() == pytest.approx([50.0, 50.0, 100 * 10 / 45, 20.0])
    assert table["b vs traditional average [%]"].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0])  # b is the average
    write_table(table.reset_index(), tmp_path, "headline", "Headline.", policies=())
    md = (tmp_path / "headline.md").read_text().splitlines()
    assert md[4] == "| Fill rate [%] | 45.000 | 30.000 | 30.000 | 50.0 | 0.0 |"


def test_comparisons_table_by_hand(tmp_path):
    policy, reference = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 5.0, 3.0])
    test = paired_tests({"dapo": policy}, reference, seed=0, n_comparisons=3)["dapo"]
    d = np.array([-1.0, 0.0, -2.0, 1.0])  # policy - reference
    t = d.mean() / (d.std(ddof=1) / 2)  # sqrt(4) decisions
    from scipy import stats

    p_t = 2 * stats.t.sf(abs(t), 3)
    made = [Comparison("dapo", "passive", "best baseline (val)", test, 50.0)]  # wins on decisions 0 and 2 of 4
    write_table(comparisons(made), tmp_path, "comparisons", "Comparisons.", policies=())
    frame = pd.read_csv(tmp_path / "comparisons.csv")
    assert list(frame.columns) == ["Policy", "Versus", "Role", "Diff [bps]", "Diff CI low [bps]", "Diff CI high [bps]",
                                   "Win rate [%]", "p (t)", "p (t, Bonf.)", "p (W)", "p (W, Bonf.)", "Identical"]
    row = frame.iloc[0]
    assert row["Diff [bps]"] == pytest.approx(-0.5) and row["Win rate [%]"] == 50.0
    assert row["p (t)"] == pytest.approx(p_t) and row["p (t, Bonf.)"] == pytest.approx(min(1.0, 3 * p_t))
    assert row["Diff CI low [bps]"] <= -0.5 <= row["Diff CI high [bps]"]
    md = (tmp_path / "comparisons.md").read_text().splitlines()
    assert md[2].startswith("| Policy | Versus | Role | Diff [bps] | Diff 95% CI [bps] | Win rate [%] |")
    assert md[4].startswith("| dapo | passive | best baseline (val) | -0.50 | [")


def test_parameter_counts_and_fit_time_in_the_training_table(tmp_path):
    assert format_params(10_100_000, 0.0013) == "10.1M (0.13%)"
    assert format_params(7_600_000_000, 1.0) == "7.6B (100%)"
    assert format_params(850, 0.5) == "850 (50%)"
    run = {"asset": "BTC", "algo": "dapo", "model": "tiny", "train_seconds": 100.0, "fit_seconds": 80.46,
           "steps": 500, "trainable_params": 10_100_000, "trainable_share": 0.0013, "final": {"train/loss": 0.12345},
           "run_dir": str(tmp_path / "run"), "policy_dir": str(tmp_path / "models" / "BTC" / "demo-dapo")}
    old = {k: v for k, v in run.items() if k not in ("fit_seconds", "policy_dir")}
    write_table(training_performance([run, old]), tmp_path, "training_performance", "Training.", policies=())
    rows = (tmp_path / "training_performance.md").read_text().splitlines()[4:6]
    assert rows[0] == "| BTC dapo (demo-dapo) | tiny | 80.5 | 500 | 0.123 | – | – | 10.1M (0.13%) |"
    assert "| 100.0 |" in rows[1] and rows[1].startswith("| BTC dapo (run) |")  # no fit_seconds: train_seconds
    raw = pd.read_csv(tmp_path / "training_performance.csv")
    assert raw["Trainable params"].tolist() == [10_100_000] * 2 and raw["Trainable share [%]"][0] == pytest.approx(0.13)


def registered(root: Path, name: str, algo: str, init_from: Path | None, steps: int, rng) -> Path:
    """A registry entry (summary.json + config.yaml) and its run directory with a sparse CSVLogger metrics.csv."""
    run_dir, policy = root / "runs" / name, root / "models" / "BTC" / name
    run_dir.mkdir(parents=True)
    policy.mkdir(parents=True)
    rows = [{"step": s, "train/reward_mean": rng.normal(-3, 1), "train/loss": 1 / (s + 1)} for s in range(steps)]
    rows += [{"step": s, "val/reward_mean": -2.0} for s in range(4, steps, 5)]
    pd.DataFrame(rows).sort_values("step").to_csv(run_dir / "metrics.csv", index=False)
    summary = {"asset": "BTC", "algo": algo, "model": "tiny", "train_seconds": 10.0, "steps": steps,
               "trainable_params": 1_000, "trainable_share": 1.0, "final": {}, "run_dir": str(run_dir),
               "policy_dir": str(policy)}
    (policy / "summary.json").write_text(json.dumps(summary))
    (policy / "config.yaml").write_text(f"model:\n  name: tiny\n  init_from: {init_from or 'null'}\n")
    return policy


def test_training_lineage_follows_init_from(tmp_path):
    rng = np.random.default_rng(0)
    sft = registered(tmp_path, "sft", "sft", None, 12, rng)
    dapo = registered(tmp_path, "dapo", "dapo", sft, 8, rng)
    chain = training_lineage(json.loads((dapo / "summary.json").read_text()))
    assert [s["algo"] for s in chain] == ["sft", "dapo"]


def test_step_offsets_chain_the_runs():
    assert step_offsets([9, 4, 7]) == [0.0, 9.0, 13.0]
    assert step_offsets([]) == []


def test_learning_curves_put_sft_then_dapo_on_one_step_axis(tmp_path):
    rng = np.random.default_rng(0)
    sft = registered(tmp_path, "sft", "sft", None, 12, rng)
    registered(tmp_path, "dapo", "dapo", sft, 8, rng)
    runs = [("SFT", tmp_path / "runs" / "sft" / "metrics.csv"), ("DAPO", tmp_path / "runs" / "dapo" / "metrics.csv")]
    keys = ["train/reward_mean", "train/loss", "val/reward_mean"]
    fig = learning_curves(runs, keys, continuous=True)
    reward = fig.axes[0]
    lines = {line.get_label(): line for line in reward.lines}
    np.testing.assert_array_equal(lines["SFT"].get_xdata(), np.arange(12))
    np.testing.assert_array_equal(lines["DAPO"].get_xdata(), np.arange(8) + 11)  # SFT's last step is 11
    assert lines["_switch"].get_xdata()[0] == 11
    assert lines["SFT"].get_color() == fig.axes[1].lines[1].get_color() != lines["DAPO"].get_color()
    # smoothed line over a faint raw line of the same run
    raw, smooth = lines["_SFT raw"], lines["SFT"]
    assert raw.get_alpha() < 0.5 and np.std(np.diff(smooth.get_ydata())) < np.std(np.diff(raw.get_ydata()))
    # one legend for the figure, none per axis
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["SFT", "DAPO", "next run starts"]
    apart = learning_curves(runs, keys, continuous=False)
    assert {line.get_label(): line for line in apart.axes[0].lines}["DAPO"].get_xdata()[0] == 0


def test_ema_smooths_without_lag_at_the_start():
    assert ema(np.array([0.0, 1.0]), span=3).tolist() == pytest.approx([0.0, 2 / 3])  # alpha 0.5, bias-corrected
    assert ema(np.full(5, 2.5), span=4).tolist() == pytest.approx([2.5] * 5)
    noise = np.random.default_rng(1).normal(size=500)
    smooth = ema(noise, span=20)
    assert smooth.shape == noise.shape and smooth[0] == noise[0] and smooth.std() < noise.std() / 3


def test_is_bars_highlight_the_policy_and_say_lower_is_better():
    names = ["market", "twap", "llm"]
    means = np.array([4.5, 3.1, 2.4])
    fig = strategy_bars(names, means, np.stack([means - 0.3, means + 0.3], axis=1), "IS [bps]")
    ax = fig.axes[0]
    bars = dict(zip(names, ax.patches, strict=True))
    assert "lower is better" in ax.get_ylabel()
    assert bars["llm"].get_hatch() == "//" and not bars["market"].get_hatch()
    assert bars["llm"].get_facecolor()[:3] not in [bars[n].get_facecolor()[:3] for n in ("market", "twap")]
    pnl = cumulative_pnl({n: np.ones(3) for n in names})
    assert [line.get_color() for line in pnl.axes[0].lines[:3]] == [colors(names)[n] for n in names]
    assert bars["twap"].get_facecolor()[:3] == pytest.approx(colors(names)["twap"])


def test_figures_are_written_as_png_and_pdf_without_temporary_files(tmp_path):
    fig = cumulative_pnl({"market": np.ones(4), "llm": np.arange(4.0)})
    png, pdf = save_figure(fig, tmp_path / "figures" / "cumulative_pnl.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["cumulative_pnl.pdf", "cumulative_pnl.png"]
    assert not plt.fignum_exists(fig.number)


@pytest.mark.slow
def test_make_tables_collects_tables_captions_and_figures(tmp_path):
    rng = np.random.default_rng(0)
    sft = registered(tmp_path, "sft", "sft", None, 12, rng)
    registered(tmp_path, "dapo", "dapo", sft, 8, rng)
    os.utime(sft / "summary.json", (1e9, 1e9))  # the registry is read oldest first
    eval_dir = tmp_path / "eval" / "BTC" / "t0"
    write_table(execution_quality(METRICS, CI, TESTS), eval_dir / "tables", "execution_quality", "Execution quality.")
    write_table(execution_detail(METRICS), eval_dir / "tables", "execution_detail", "Execution detail.")
    write_table(headline(METRICS, ["llm"], ["market", "twap"]), eval_dir / "tables", "headline", "Headline.")
    write_table(regime_table([Regime("spread", "ticks", (1.0,))], {"spread": np.array([0, 1, 1])},
                             {"llm": np.ones(3)}, None, []), eval_dir / "tables", "execution_by_regime", "By regime.")
    save_figure(cumulative_pnl({"llm": np.ones(3)}), eval_dir / "figures" / "cumulative_pnl")
    (eval_dir / "results.json").write_text(json.dumps({"asset": "BTC", "metrics": METRICS,
                                                       "caption": "BTC, synthetic data, trade-through",
                                                       "venue": "hyperliquid", "fills": "book-only fills"}))
    out = tmp_path / "tables"
    subprocess.run([sys.executable, str(REPO / "experiments" / "make_tables.py"), "--registry",
                    str(tmp_path / "models"), "--evals", str(tmp_path / "eval"), "--out", str(out)], check=True,
                   capture_output=True)
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["BTC_cumulative_pnl.pdf", "BTC_cumulative_pnl.png", "learning_curves_BTC_dapo.pdf",
                       "learning_curves_BTC_dapo.png"]  # one curve for the SFT -> DAPO lineage, not one per run
    captions = {p.name: p.read_text() for p in out.glob("*.caption.txt")}
    assert set(captions) == {"training_performance.caption.txt", "fill_rate_comparison.caption.txt",
                             "execution_quality_BTC.caption.txt", "execution_detail_BTC.caption.txt",
                             "headline_BTC.caption.txt", "execution_by_regime_BTC.caption.txt"}  # no comparisons
    assert len(set(captions.values())) == 6
    assert captions["fill_rate_comparison.caption.txt"].startswith("Fill rate [%] by strategy and asset")
    assert "BTC: BTC" not in captions["fill_rate_comparison.caption.txt"]
    assert pd.read_csv(out / "fill_rate_comparison.csv").columns.tolist() == ["Strategy", "BTC [%]", "Average [%]"]
    assert pd.read_csv(out / "training_performance.csv").Run.tolist() == ["BTC sft (sft)", "BTC dapo (dapo)"]


def test_is_by_objective_is_the_mean_over_each_objectives_decisions():
    from hyperdapo.evaluation.tables import by_objective

    objective = np.array(["patient", "aggressive", "patient", "risk_averse"])
    table = by_objective({"llm": np.array([1.0, 2.0, 3.0, -4.0]), "market": np.array([5.0, 5.0, 6.0, 7.0])}, objective)
    assert list(table.columns) == ["Strategy", "IS aggressive [bps]", "IS patient [bps]", "IS risk_averse [bps]",
                                   "n aggressive", "n patient", "n risk_averse"]
    assert table.iloc[0].tolist() == ["llm", 2.0, 2.0, -4.0, 1, 2, 1]  # patient: (1 + 3) / 2
    assert table.iloc[1].tolist() == ["market", 5.0, 5.5, 7.0, 1, 2, 1]


def registered_relative(root: Path, name: str, algo: str, parent: str | None, tags: list[str]) -> None:
    """A registry entry under ``root`` whose files record paths relative to ``root`` (train.py run from there)."""
    run_dir, policy = Path("outputs", "runs", name), Path("outputs", "models", "BTC", name)
    (root / run_dir).mkdir(parents=True)
    (root / policy).mkdir(parents=True)
    pd.DataFrame({"step": range(6), "train/loss": np.linspace(1, 0.5, 6)}).to_csv(root / run_dir / "metrics.csv",
                                                                                 index=False)
    summary = {"asset": "BTC", "algo": algo, "model": "tiny", "train_seconds": 10.0, "steps": 6,
               "trainable_params": 1_000, "trainable_share": 1.0, "final": {}, "run_dir": str(run_dir),
               "policy_dir": str(policy)}
    (root / policy / "summary.json").write_text(json.dumps(summary))
    init = f"outputs/models/BTC/{parent}" if parent else "null"
    (root / policy / "config.yaml").write_text(f"model:\n  init_from: {init}\nlogger:\n  tags: {json.dumps(tags)}\n")


def evaluation_of(root: Path, stamp: str, run: str, mtime: float) -> None:
    """An evaluation of the registered run ``run`` with an IS table and both of its figures."""
    eval_dir = root / "outputs" / "eval" / "BTC" / stamp
    write_table(execution_quality(METRICS, CI, TESTS), eval_dir / "tables", "execution_quality", f"IS of {run}.")
    save_figure(cumulative_pnl({"llm": np.ones(3)}), eval_dir / "figures" / "cumulative_pnl")
    save_figure(cumulative_pnl({"llm": np.ones(3)}), eval_dir / "figures" / "learning_curves")
    result = {"asset": "BTC", "metrics": METRICS, "caption": "BTC", "venue": "binance_futures",
              "fills": "fills when the opposite best touches the limit price or a trade prints through it",
              "policies": {"llm": {"dirs": [f"outputs/models/BTC/{run}"]}}}
    (eval_dir / "results.json").write_text(json.dumps(result))
    os.utime(eval_dir / "results.json", (mtime, mtime))


@pytest.fixture
def project(tmp_path):
    """A project with runs sft -> dapo (tag thesis) and grpo (no tag), an evaluation of dapo and a newer one of
    grpo, and a working directory elsewhere."""
    root = tmp_path / "project"
    registered_relative(root, "sft", "sft", None, ["thesis"])
    registered_relative(root, "dapo", "dapo", "sft", ["thesis"])
    registered_relative(root, "grpo", "grpo", None, [])
    evaluation_of(root, "t0", "dapo", 1e9)
    evaluation_of(root, "t1", "grpo", 2e9)
    (tmp_path / "elsewhere").mkdir()
    return root, tmp_path / "elsewhere"


def make_tables(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(REPO / "experiments" / "make_tables.py"), *args], check=True, cwd=cwd,
                   capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("selection", [["--runs", "dapo"], ["--tags", "thesis"]])
def test_make_tables_filters_runs_from_any_directory(project, selection):
    root, elsewhere = project
    make_tables(elsewhere, "--root", str(root), "--out", "tables", *selection)  # --out: relative to the caller
    out = elsewhere / "tables"
    runs = pd.read_csv(out / "training_performance.csv").Run.tolist()
    assert runs == (["BTC dapo (dapo)"] if selection[0] == "--runs" else ["BTC sft (sft)", "BTC dapo (dapo)"])
    # the evaluation of dapo, not the newer one of grpo; one learning-curve figure (the registry's, with the SFT
    # start before it on one axis), not a second copy of the evaluation's
    assert (out / "execution_quality_BTC.caption.txt").read_text() == "IS of dapo.\n"
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == ["BTC_cumulative_pnl.png",
                                                                       "learning_curves_BTC_dapo.png"]


@pytest.mark.slow
def test_make_tables_without_a_filter_takes_every_run_and_the_newest_evaluation(project):
    root, elsewhere = project
    make_tables(elsewhere, "--root", str(root))
    out = root / "outputs" / "tables"  # the defaults are under the root, not the working directory
    assert len(pd.read_csv(out / "training_performance.csv")) == 3
    assert (out / "execution_quality_BTC.caption.txt").read_text() == "IS of grpo.\n"
    # the venue and the fill rule as the evaluation recorded them (a touch rule is no trade-through)
    assert (out / "fill_rate_comparison.caption.txt").read_text().endswith(
        "BTC on binance_futures: fills when the opposite best touches the limit price or a trade prints through it.\n")
    assert not list((out / "figures").glob("BTC_learning_curves*"))


@pytest.mark.slow
def test_make_tables_names_an_unknown_run(project):
    root, elsewhere = project
    with pytest.raises(subprocess.CalledProcessError) as failed:
        make_tables(elsewhere, "--root", str(root), "--runs", "dapo", "nope")
    assert "nope" in failed.value.stderr.decode() and "dapo, grpo, sft" in failed.value.stderr.decode()
