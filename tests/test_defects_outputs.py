"""Outputs that must not mislead a thesis reader (issue 20, items 5-7): identical series read "identical", only a
significant win is bold, the headline compares with the validation-chosen best baseline, captions describe the
columns present and name the venue and the fill rule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hyperdapo.evaluation.figures import cumulative_pnl, tie_style
from hyperdapo.evaluation.stats import Comparison, identical_to, paired_tests, significant_win
from hyperdapo.evaluation.tables import comparisons, execution_quality, headline, write_table
from hyperdapo.pipeline.evaluate_run import BEST, EvaluatedPolicy, caption, evaluation_tables
from tests.pipeline_helpers import run_config

IS_MODERATE = np.array([1.0, -2.0, 3.0, 0.5])


def test_identical_series_read_identical_not_p_1(tmp_path):
    test = paired_tests({"llm": IS_MODERATE.copy()}, IS_MODERATE, n_comparisons=2)["llm"]
    assert test["identical"] and test["t_p"] == 1.0 and test["mean_diff_bps"] == 0.0
    assert not paired_tests({"x": IS_MODERATE + [0, 0, 0, 1]}, IS_MODERATE)["x"]["identical"]
    write_table(comparisons([Comparison("llm", "moderate", BEST, test, 0.0)]), tmp_path, "comparisons", "C.",
                policies=())
    row = (tmp_path / "comparisons.md").read_text().splitlines()[4].split(" | ")
    assert row[-4:] == ["identical", "identical", "identical", "identical |"]  # the four p columns
    assert "1.000" not in (tmp_path / "comparisons.md").read_text()
    assert "p = identical: the two series are equal" in (tmp_path / "comparisons.md").read_text().splitlines()[0]
    raw = pd.read_csv(tmp_path / "comparisons.csv")
    assert raw["p (t)"].tolist() == [1.0] and raw["Identical"].tolist() == [True]  # the CSV stays numeric
    metrics = {n: {"IS [bps]": 0.6} for n in ("llm", "moderate")}
    ci = dict.fromkeys(metrics, (0.0, 1.0))
    write_table(execution_quality(metrics, ci, {"llm": test}), tmp_path, "q", "Q.", bold=())
    assert "| llm | 0.60 | [0.00, 1.00] | 0.00 | identical | identical |" in (tmp_path / "q.md").read_text()


def test_a_win_is_significant_only_when_cheaper_and_both_bonferroni_p_below_5_percent():
    win = {"mean_diff_bps": -1.2, "t_p_bonf": 0.01, "wilcoxon_p_bonf": 0.049, "identical": False}
    assert significant_win(win)
    assert not significant_win({**win, "mean_diff_bps": 1.2})  # significantly dearer: no win
    assert not significant_win({**win, "wilcoxon_p_bonf": 0.05})  # the raw p may be 0.01, the corrected one counts
    assert not significant_win({**win, "mean_diff_bps": 0.0, "identical": True, "t_p_bonf": 1.0})


def test_only_the_named_rows_are_bold_and_policies_still_come_first(tmp_path):
    frame = pd.DataFrame({"Strategy": ["market", "a", "b"], "IS [bps]": [3.0, 1.0, 2.0]})
    md = write_table(frame, tmp_path, "t", "T.", policies=("a", "b"), bold=("a",))[0].read_text().splitlines()
    assert md[4:7] == ["| **a** | **1.00** |", "| b | 2.00 |", "| market | 3.00 |"]
    tex = (tmp_path / "t.tex").read_text()
    assert r"\textbf{a}" in tex and r"\textbf{b}" not in tex
    # without ``bold`` the policies are bold, as before (tables of the experiments)
    assert "| **b** |" in write_table(frame, tmp_path, "u", "U.", policies=("a", "b"))[0].read_text()


def test_identical_to_lists_the_exact_ties():
    series = {"llm": IS_MODERATE.copy(), "market": IS_MODERATE + 1, "moderate": IS_MODERATE.copy()}
    assert identical_to(series, "llm") == ["moderate"] and identical_to(series, "market") == []


def test_headline_shows_the_best_baseline_beside_the_traditional_average():
    keys = ("Fill rate [%]", "Slippage [bps]", "Price improvement [%]", "Time to fill [s]")
    rows = {"market": (0.0, 8.0, math.nan, math.nan), "moderate": (70.0, 2.0, 60.0, 40.0),
            "passive": (20.0, 4.0, 90.0, 100.0), "llm": (70.0, 2.0, 60.0, 40.0)}  # llm = moderate
    metrics = {n: dict(zip(keys, v, strict=True)) for n, v in rows.items()}
    table = headline(metrics, ["llm"], ["market", "moderate", "passive"], best="moderate").set_index("Metric")
    assert list(table.columns) == ["llm", "Best baseline (moderate)", "Traditional average",
                                   "llm vs best baseline [%]", "llm vs traditional average [%]"]
    assert table["llm vs best baseline [%]"].tolist() == [0.0] * 4  # equal to the best baseline: no improvement
    # vs the average (fill 30, slippage 14 / 3, price improvement 75, time to fill 70): the seeds' +133 %
    assert table["llm vs traditional average [%]"].tolist() == pytest.approx(
        [100 * 40 / 30, 100 * (14 / 3 - 2) / (14 / 3), -20.0, 100 * 30 / 70])


def evaluation_inputs():
    """A composed configuration, a stand-in task (trade-through fills) and hand-made metrics of an evaluation in
    which the policy ``llm`` equals the best baseline ``moderate`` on every decision."""
    cfg = run_config([], "evaluate")
    task = SimpleNamespace(tape=SimpleNamespace(book_only=False))
    names = ["market", *cfg.evaluate.baselines.fixed_offsets_bps, "twap", "vwap", "analytic", "llm"]
    metrics = {n: {"Fill rate [%]": 50.0, "IS [bps]": 1.0, "Slippage [bps]": 2.0, "Price improvement [%]": 40.0,
                   "Time to fill [s]": 30.0, "Invalid": 0.0, "Depth-short": 0.0} for n in names}
    ci = dict.fromkeys(names, (0.5, 1.5))
    test = paired_tests({"llm": IS_MODERATE.copy()}, IS_MODERATE)["llm"]
    made = [Comparison("llm", "moderate", BEST, test, 0.0)]
    policies = [EvaluatedPolicy("llm", (), None)]
    return cfg, task, metrics, ci, made, policies


def test_evaluation_captions_follow_the_columns_and_name_venue_and_fill_rule():
    cfg, task, metrics, ci, made, policies = evaluation_inputs()
    cap = caption(cfg, task, 4)
    tables = evaluation_tables(cfg, task, 4, metrics, ci, made, policies, {}, cap, "moderate",
                               {"llm": ["moderate"]})
    for stem, (df, text, _, _) in tables.items():
        assert ("Depth-short" in text) == ("Depth-short" in df.columns), stem
        assert cfg.venue.name in text and "fills by trades printing through the limit price" in text, stem
    assert "Sharpe per decision blank: fewer than 30 decisions" in tables["execution_detail"][1]
    assert "llm and moderate are identical on every decision" in tables["headline"][1]
    three = evaluation_tables(cfg, task, 4, metrics, ci, made, policies, {}, cap, "moderate",
                              {"llm": ["moderate", "sft"], "sft": ["moderate", "llm"]})["headline"][1]
    assert three.count("identical") == 1 and "llm, moderate and sft are identical on every decision" in three
    # the policy equals the best baseline: listed first, bold nowhere
    assert all(bold == [] for _, _, _, bold in tables.values())
    assert tables["execution_quality"][2] == ["llm"]


def test_cumulative_pnl_draws_ties_visibly_on_integer_decision_ticks():
    fig = cumulative_pnl({"market": np.array([-1.0, -1.0, -1.0, -1.0]), "moderate": np.array([0.5, -0.2, 0.4, 0.1]),
                          "llm": np.array([0.5, -0.2, 0.4, 0.1])})  # the policy equals moderate
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    tie = lines["llm (identical to moderate)"]
    # drawn on top of the line it hides, dashed with markers, so both stay visible
    assert tie.get_linestyle() == "--" and tie.get_marker() == "o" and tie.get_zorder() > lines["moderate"].get_zorder()
    assert lines["moderate"].get_linestyle() == "-" and lines["market"].get_linestyle() == "-"
    np.testing.assert_array_equal(tie.get_xdata(), [1, 2, 3, 4])  # decisions counted from 1
    np.testing.assert_allclose(tie.get_ydata(), [0.5, 0.3, 0.7, 0.8])
    assert "llm (identical to moderate)" in [t.get_text() for t in fig.legends[0].get_texts()]
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no decision 2.5


def test_three_identical_series_interleave_their_dashes():
    # the second and third of a group of three: dashes 4 on / 8 off, the third shifted by one dash, markers differ
    assert tie_style(1, 3) == {"ls": (0.0, (4.0, 8.0)), "marker": "o", "markersize": 3}
    assert tie_style(2, 3) == {"ls": (4.0, (4.0, 8.0)), "marker": "s", "markersize": 3}
    fig = cumulative_pnl({"moderate": np.ones(3), "llm": np.ones(3), "sft": np.ones(3)})
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[:3] == ["moderate", "llm (identical to moderate)", "sft (identical to moderate, llm)"]
