"""Thesis tables as Markdown, LaTeX and CSV (atomic writes) under a run's ``tables/`` directory.

- Training Performance: model, training time (the fit only, data building excluded), steps, final loss,
  accuracy or valid-action rate, validation reward, trainable parameters with their share (one row per run).
- Fill Rate Comparison: strategies x assets (fill rate in %), with the average over assets.
- Execution Quality (cost): per strategy the implementation shortfall with its bootstrap 95% CI, the paired
  difference to a reference (the best baseline for each policy in an evaluation; ``llm`` for the paper-trading
  summary) and the paired t and Wilcoxon p-values, raw and Bonferroni-corrected.
- Execution Detail: per strategy fill rate, slippage, price-improvement share, time to fill, adverse selection,
  Sharpe per decision, max drawdown, win rate (policies: share of decisions cheaper than the best baseline), depth-short
  decisions (an order beyond the visible book, priced by the impact model) and invalid answers (the two execution
  tables together fit a page, where one wide table did not).
- Headline (the seeds' shape): metric x (policy, the validation-chosen best baseline, traditional average, the
  policy's improvement over each) for fill rate, slippage, price improvement and time to fill.
- Comparisons: one row per paired test made (policy vs the best baseline, policy vs the policy it started from).

Files: ``<stem>.md`` and ``<stem>.tex`` carry the caption and the formatted values; ``<stem>.csv`` holds the raw
values only (``pd.read_csv(path)`` reads it: no comment line, full float precision, the CI as two columns);
the caption of the CSV is the sidecar ``<stem>.caption.txt``.

Formatting of md/tex, one rule per column (by the unit in its header): ``[bps]`` and ``[USD]`` 2 decimals,
``[%]`` and ``[s]`` 1 decimal, ``p (...)`` p-values (3 decimals, 1 significant digit below 0.001, floor
``<1e-4``) with significance stars (* p < 0.05, ** p < 0.01, *** p < 0.001), counts as integers, other numbers
3 decimals (Sharpe ratios 2). Missing values print as an en dash. Policy rows (the trained policies, ``llm`` by
default) come first; bold are the rows named in ``bold`` (an evaluation names the policies that beat the best
baseline significantly; without ``bold``, the policy rows). A row whose raw ``Identical`` column is true (its series
equals the reference's on every decision) prints "identical" in its p-value columns, not p = 1; the column itself
stays in the CSV only. The LaTeX starts with a ``% requires`` comment naming its packages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from hyperdapo.atomic import write_text_atomic
from hyperdapo.evaluation.stats import Comparison

POLICIES = ("llm",)
P_FLOOR = 1e-4
STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
STAR_NOTE = "Stars: * p < 0.05, ** p < 0.01, *** p < 0.001; p-values below 1e-4 are shown as <1e-4."
INT_COLUMNS = ("Steps", "Invalid", "Invalid answers", "Depth-short")
IDENTICAL = "Identical"  # raw bool column: the row's series equals its reference's on every decision
IDENTICAL_NOTE = "p = identical: the two series are equal on every decision (no test is possible)."
LATEX_PACKAGES = ("booktabs",)

# display-only merges of raw columns: (shown column, raw columns, formatter of the raw values)
MERGES: tuple[tuple[str, tuple[str, str], Callable[[float, float], str]], ...] = (
    ("IS 95% CI [bps]", ("IS CI low [bps]", "IS CI high [bps]"), lambda lo, hi: f"[{lo:.2f}, {hi:.2f}]"),
    ("Diff 95% CI [bps]", ("Diff CI low [bps]", "Diff CI high [bps]"), lambda lo, hi: f"[{lo:.2f}, {hi:.2f}]"),
    ("Trainable params", ("Trainable params", "Trainable share [%]"), lambda n, pct: format_params(n, pct / 100)),
)


def format_params(n: float, share: float) -> str:
    """A parameter count and its share of the model (a fraction): ``10_100_000, 0.0013`` -> ``10.1M (0.13%)``."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            count = f"{n / scale:.1f}{suffix}"
            break
    else:
        count = f"{int(n)}"
    pct = 100 * share
    return f"{count} ({pct:.0f}%)" if pct >= 10 else f"{count} ({pct:.2f}%)"


def stars(p: float) -> str:
    """Significance stars of a p-value: ``***`` < 0.001, ``**`` < 0.01, ``*`` < 0.05, else empty."""
    return next((s for level, s in STARS if p < level), "")


def format_p(p: float) -> str:
    """A p-value with the floor ``<1e-4`` and its stars: ``0.0123`` -> ``0.012*``, ``3e-7`` -> ``<1e-4***``."""
    if p < P_FLOOR:
        text = f"<{P_FLOOR:.0e}".replace("e-0", "e-")
    elif p < 0.001:
        text = f"{p:.1e}".replace("e-0", "e-")
    else:
        text = f"{p:.3f}"
    return text + stars(p)


def _is_p_column(name: str) -> bool:
    return name.startswith("p (")


def column_formatter(name: str) -> Callable[[float], str]:
    """The number format of one column, chosen by its header (see the module docstring)."""
    if _is_p_column(name):
        return format_p
    if name in INT_COLUMNS or name.startswith("n "):  # counts, e.g. by_objective's "n patient"
        return lambda v: f"{v:,.0f}"
    if "[bps]" in name or "[USD]" in name or name.startswith("Sharpe"):
        return lambda v: f"{v:,.2f}"
    if "[%]" in name or "[s]" in name:
        return lambda v: f"{v:,.1f}"
    return lambda v: f"{v:,.3f}"


def _identical_rows(df: pd.DataFrame) -> np.ndarray:
    return df[IDENTICAL].fillna(False).astype(bool).to_numpy() if IDENTICAL in df else np.zeros(len(df), dtype=bool)


def display_frame(df: pd.DataFrame, policies: Sequence[str] = POLICIES) -> pd.DataFrame:
    """The raw table as strings: merged columns (CI, parameters), per-column precision, policy rows first, p-values
    of identical series as "identical". Missing numbers become ``""`` (rendered as an en dash)."""
    df = order_policies_first(df, policies)
    identical = _identical_rows(df)
    shown = df.drop(columns=[IDENTICAL], errors="ignore")
    for target, (a, b), fmt in MERGES:
        if a in df and b in df:
            merged = [fmt(x, y) if pd.notna(x) and pd.notna(y) else "" for x, y in zip(df[a], df[b], strict=True)]
            at = list(shown.columns).index(a)
            shown = shown.drop(columns=[a, b])
            shown.insert(at, target, merged)
    for col in shown.columns:
        if pd.api.types.is_numeric_dtype(shown[col]):
            fmt = column_formatter(col)
            shown[col] = [fmt(float(v)) if pd.notna(v) and math.isfinite(v) else "" for v in shown[col]]
            if _is_p_column(col):
                shown.loc[identical, col] = "identical"
        else:
            shown[col] = shown[col].fillna("").astype(str)
    return shown


def order_policies_first(df: pd.DataFrame, policies: Sequence[str] = POLICIES) -> pd.DataFrame:
    """Rows whose first-column value is a policy name first (in ``policies`` order), the rest in their order."""
    key = df.iloc[:, 0].astype(str)
    rank = key.map({p: i for i, p in enumerate(policies)}).fillna(len(policies))
    return df.iloc[rank.to_numpy().argsort(kind="stable")].reset_index(drop=True)


def _bold_mask(shown: pd.DataFrame, bold: Sequence[str]) -> list[bool]:
    return [str(v) in bold for v in shown.iloc[:, 0]]


def _full_caption(df: pd.DataFrame, caption: str) -> str:
    notes = [STAR_NOTE] if any(_is_p_column(c) for c in df.columns) else []
    notes += [IDENTICAL_NOTE] if _identical_rows(df).any() else []
    return " ".join([caption, *notes])


def _md_escape_stars(text: str) -> str:
    """Stars inside bold text would end the bold: escape them (they render as ``*``)."""
    return text.replace("*", r"\*")


def _md_cell(text: str, bold: bool) -> str:
    if not text:
        return "–"
    return f"**{_md_escape_stars(text)}**" if bold else text


def to_markdown(df: pd.DataFrame, caption: str, policies: Sequence[str] = POLICIES,
                bold: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table under its bold caption; policy rows first, the ``bold`` rows (default: the
    policies) bold."""
    shown = display_frame(df, policies)
    head = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(shown.columns) - 1)) + "|"
    rows = ["| " + " | ".join(_md_cell(v, b) for v in row) + " |"
            for row, b in zip(shown.itertuples(index=False), _bold_mask(shown, _or(bold, policies)), strict=True)]
    return "\n".join([f"**{_md_escape_stars(_full_caption(df, caption))}**", "", head, rule, *rows, ""])


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("$", r"\$"), ("<", r"$<$"), (">", r"$>$"), ("–", "--")):
        s = s.replace(a, b)
    return s


def _tex_cell(text: str, bold: bool) -> str:
    if not text:
        return "--"
    return rf"\textbf{{{_tex_escape(text)}}}" if bold else _tex_escape(text)


def to_latex(df: pd.DataFrame, caption: str, label: str, policies: Sequence[str] = POLICIES,
             bold: Sequence[str] | None = None) -> str:
    """A booktabs ``table`` float (``tab:<label>``); policy rows first, the ``bold`` rows (default: the policies)
    in ``\\textbf``."""
    shown = display_frame(df, policies)
    cols = "l" + "r" * (len(shown.columns) - 1)
    lines = ["% requires " + " ".join(rf"\usepackage{{{p}}}" for p in LATEX_PACKAGES),
             r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(_full_caption(df, caption))}}}",
             rf"\label{{tab:{label}}}", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(_tex_escape(str(c)) for c in shown.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex_cell(v, b) for v in row) + r" \\"
              for row, b in zip(shown.itertuples(index=False), _bold_mask(shown, _or(bold, policies)), strict=True)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _or(bold: Sequence[str] | None, policies: Sequence[str]) -> Sequence[str]:
    return policies if bold is None else bold


def write_table(df: pd.DataFrame, out_dir: Path, stem: str, caption: str, policies: Sequence[str] = POLICIES,
                bold: Sequence[str] | None = None) -> list[Path]:
    """``<stem>.md``, ``<stem>.tex``, ``<stem>.csv`` (raw values, policy rows first) and ``<stem>.caption.txt``;
    the ``bold`` rows (default: the policies) in bold in md and tex."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{stem}.{ext}" for ext in ("md", "tex", "csv", "caption.txt")]
    write_text_atomic(paths[0], to_markdown(df, caption, policies, bold))
    write_text_atomic(paths[1], to_latex(df, caption, stem, policies, bold))
    write_text_atomic(paths[2], order_policies_first(df, policies).to_csv(index=False))
    write_text_atomic(paths[3], caption + "\n")
    return paths


def _parent_summary(summary: dict) -> dict | None:
    """The summary of the registered policy a run started from (its ``model.init_from``), if any."""
    config = Path(summary.get("policy_dir", summary["run_dir"]), "config.yaml")
    if not config.exists():
        return None
    init = ((yaml.safe_load(config.read_text()) or {}).get("model") or {}).get("init_from")
    parent = Path(init, "summary.json") if init else None
    return json.loads(parent.read_text()) if parent is not None and parent.exists() else None


def training_lineage(summary: dict) -> list[dict]:
    """The summaries of the runs that produced a policy, oldest first (e.g. ``[sft, dapo]``): follows
    ``model.init_from`` in each run's ``config.yaml`` back to the registered policy it started from."""
    chain = [summary]
    while (parent := _parent_summary(chain[0])) is not None and all(parent["run_dir"] != s["run_dir"] for s in chain):
        chain.insert(0, parent)
    return chain


def run_label(summary: dict) -> str:
    """``<asset> <algo> (<run name>)``, the run name being the registered policy's directory name."""
    name = Path(summary.get("policy_dir", summary["run_dir"])).name
    return f"{summary['asset']} {summary['algo']} ({name})"


def training_performance(runs: list[dict]) -> pd.DataFrame:
    """One row per training summary (``summary.json`` of a run); the training time is the fit's wall time in s
    (``fit_seconds``; ``train_seconds``, which includes building the data, for older summaries)."""
    rows = []
    for r in runs:
        final = r.get("final", {})
        acc = final.get("train/pref_accuracy", final.get("val/valid_rate", math.nan))
        rows.append({
            "Run": run_label(r), "Model": r["model"],
            "Training time [s]": r["fit_seconds"] if "fit_seconds" in r else r["train_seconds"],
            "Steps": r["steps"], "Final loss": final.get("train/loss", math.nan),
            "Accuracy / valid rate": acc, "Val reward [bps]": final.get("val/reward_mean", math.nan),
            "Trainable params": r["trainable_params"], "Trainable share [%]": 100 * r["trainable_share"],
        })
    return pd.DataFrame(rows)


def fill_rate_comparison(fill_rates: dict[str, dict[str, float]]) -> pd.DataFrame:
    """``fill_rates[asset][strategy]`` (%) -> strategies x assets (column ``<asset> [%]``) with an average."""
    frame = pd.DataFrame(fill_rates)
    frame.columns = [f"{a} [%]" for a in frame.columns]
    frame["Average [%]"] = frame.mean(axis=1)
    return frame.reset_index(names="Strategy")


def execution_quality(metrics: dict[str, dict[str, float]], ci: dict[str, tuple[float, float]],
                      tests: dict[str, dict], reference: str = "llm") -> pd.DataFrame:
    """Cost per strategy: mean IS (bps) with its 95% CI and, for the rows in ``tests``, the paired test against
    ``reference`` (``Diff vs <reference>`` = IS(row) - IS(reference), bps, negative = the row is cheaper; p-values
    raw and Bonferroni-corrected; ``Identical``: equal to the reference on every decision)."""
    rows = []
    for name, m in metrics.items():
        t = tests.get(name, {})
        rows.append({
            "Strategy": name, "IS [bps]": m["IS [bps]"], "IS CI low [bps]": ci[name][0],
            "IS CI high [bps]": ci[name][1], f"Diff vs {reference} [bps]": t.get("mean_diff_bps", math.nan),
            "p (t)": t.get("t_p", math.nan), "p (t, Bonf.)": t.get("t_p_bonf", math.nan),
            "p (W)": t.get("wilcoxon_p", math.nan), "p (W, Bonf.)": t.get("wilcoxon_p_bonf", math.nan),
            IDENTICAL: bool(t.get("identical", False)),
        })
    return pd.DataFrame(rows)


DETAIL_COLUMNS = ("Fill rate [%]", "Slippage [bps]", "Price improvement [%]", "Time to fill [s]",
                  "Adverse selection [bps]", "Sharpe per decision", "Max drawdown [USD]", "Win rate [%]", "Depth-short")


def execution_detail(metrics: dict[str, dict[str, float]]) -> pd.DataFrame:
    """How each strategy executes: the :func:`~hyperdapo.evaluation.metrics.strategy_metrics` of
    ``DETAIL_COLUMNS`` (``Depth-short``: decisions with an order beyond the visible book; ``Win rate [%]``: set for
    the policies only, missing elsewhere) and the number of invalid answers (fallback order used)."""
    return pd.DataFrame([{"Strategy": name, **{c: m.get(c, math.nan) for c in DETAIL_COLUMNS},
                          "Invalid answers": m["Invalid"]} for name, m in metrics.items()])


def by_objective(is_bps: dict[str, np.ndarray], objective: np.ndarray) -> pd.DataFrame:
    """Mean IS [bps] of each strategy (rows) over the decisions of each objective (columns ``IS <objective>
    [bps]``, objectives sorted by name) and the decisions of each (``n <objective>``)."""
    names = sorted(set(objective))
    rows = []
    for strategy, values in is_bps.items():
        row = {"Strategy": strategy}
        for o in names:
            row[f"IS {o} [bps]"] = float(np.mean(values[objective == o]))
        rows.append(row)
    counts = {f"n {o}": int((objective == o).sum()) for o in names}
    return pd.DataFrame(rows).assign(**counts)


# the seeds' headline metrics and their direction: +1 higher is better, -1 lower is better
HEADLINE_METRICS = (("Fill rate [%]", 1), ("Slippage [bps]", -1), ("Price improvement [%]", 1),
                    ("Time to fill [s]", -1))
TRADITIONAL = "Traditional average"


def improvement_pct(value: float, reference: float, direction: int) -> float:
    """Relative improvement (%) of ``value`` over ``reference``, positive = better in the metric's ``direction``
    (+1 higher is better, -1 lower is better): ``direction * (value - reference) / |reference| * 100``; NaN when
    the reference is 0 or missing."""
    if not math.isfinite(reference) or reference == 0:
        return math.nan
    return direction * (value - reference) / abs(reference) * 100


def headline(metrics: dict[str, dict[str, float]], policies: Sequence[str], traditional: Sequence[str],
             best: str | None = None) -> pd.DataFrame:
    """The seeds' table: one row per :data:`HEADLINE_METRICS` metric, a column per policy, the ``best`` baseline
    (chosen on validation; ``Best baseline (<name>)``), the traditional average (the mean over the ``traditional``
    strategies that have a value) and each policy's improvement over each (:func:`improvement_pct`,
    ``<policy> vs best baseline [%]``, ``<policy> vs traditional average [%]``): an average over weak rules flatters
    any policy, the best baseline is the comparison that counts."""
    rows = []
    for metric, direction in HEADLINE_METRICS:
        values = [metrics[n][metric] for n in traditional if math.isfinite(metrics[n][metric])]
        references = {"best baseline": metrics[best][metric]} if best is not None else {}
        references["traditional average"] = sum(values) / len(values) if values else math.nan
        row = {"Metric": metric, **{p: metrics[p][metric] for p in policies}}
        row |= {f"Best baseline ({best})": references["best baseline"]} if best is not None else {}
        row[TRADITIONAL] = references["traditional average"]
        row |= {f"{p} vs {ref} [%]": improvement_pct(metrics[p][metric], value, direction)
                for p in policies for ref, value in references.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(made: Sequence[Comparison]) -> pd.DataFrame:
    """One row per paired test made (``Diff`` = IS(policy) - IS(versus), bps, negative = the policy is cheaper)."""
    return pd.DataFrame([{
        "Policy": c.policy, "Versus": c.versus, "Role": c.role, "Diff [bps]": c.test["mean_diff_bps"],
        "Diff CI low [bps]": c.test["ci_low"], "Diff CI high [bps]": c.test["ci_high"], "Win rate [%]": c.win_rate_pct,
        "p (t)": c.test["t_p"], "p (t, Bonf.)": c.test["t_p_bonf"], "p (W)": c.test["wilcoxon_p"],
        "p (W, Bonf.)": c.test["wilcoxon_p_bonf"], IDENTICAL: bool(c.test.get("identical", False)),
    } for c in made])
