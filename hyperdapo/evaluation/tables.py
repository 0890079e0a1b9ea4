"""Thesis tables as Markdown, LaTeX and CSV (atomic writes) under a run's ``tables/`` directory.

- Training Performance: model, training time, steps, final loss, accuracy or valid-action rate,
  trainable parameters and share (one row per training run).
- Fill Rate Comparison: strategies x assets (fill rate in %), with the average over assets.
- Execution Quality: per strategy slippage, price improvement share, time to fill, implementation shortfall
  with its bootstrap 95% CI, and the paired tests against the candidate (``llm``): t and Wilcoxon p-values,
  Bonferroni-corrected.
Every table carries a caption (e.g. "book-only fills" for data without trades) in all three formats.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from hyperdapo.atomic import write_text_atomic


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 \
            else f"{v:.3e}"
    return str(v)


def to_markdown(df: pd.DataFrame, caption: str) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([f"**{caption}**", "", head, rule, *rows, ""])


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("$", r"\$")):
        s = s.replace(a, b)
    return s


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    cols = "l" + "r" * (len(df.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}", rf"\label{{tab:{label}}}",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(_tex_escape(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex_escape(_fmt(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def write_table(df: pd.DataFrame, out_dir: Path, stem: str, caption: str) -> list[Path]:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` (the caption is the CSV's first, commented line)."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{stem}.{ext}" for ext in ("md", "tex", "csv")]
    write_text_atomic(paths[0], to_markdown(df, caption))
    write_text_atomic(paths[1], to_latex(df, caption, stem))
    write_text_atomic(paths[2], f"# {caption}\n" + df.to_csv(index=False))
    return paths


def training_performance(runs: list[dict]) -> pd.DataFrame:
    """One row per training summary (``summary.json`` of a run)."""
    rows = []
    for r in runs:
        final = r.get("final", {})
        acc = final.get("train/pref_accuracy", final.get("val/valid_rate", math.nan))
        rows.append({
            "Run": f"{r['asset']} {r['algo']}", "Model": r["model"], "Training time [s]": r["train_seconds"],
            "Steps": r["steps"], "Final loss": final.get("train/loss", math.nan),
            "Accuracy / valid rate": acc, "Val reward [bps]": final.get("val/reward_mean", math.nan),
            "Trainable params": r["trainable_params"], "Trainable share [%]": 100 * r["trainable_share"],
        })
    return pd.DataFrame(rows)


def fill_rate_comparison(fill_rates: dict[str, dict[str, float]]) -> pd.DataFrame:
    """``fill_rates[asset][strategy]`` (%) -> strategies x assets with an Average column."""
    frame = pd.DataFrame(fill_rates)
    frame["Average"] = frame.mean(axis=1)
    return frame.reset_index(names="Strategy")


def execution_quality(metrics: dict[str, dict[str, float]], ci: dict[str, tuple[float, float]],
                      tests: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for name, m in metrics.items():
        t = tests.get(name, {})
        rows.append({
            "Strategy": name, "Fill rate [%]": m["Fill rate [%]"], "Slippage [bps]": m["Slippage [bps]"],
            "Price improvement [%]": m["Price improvement [%]"], "Time to fill [s]": m["Time to fill [s]"],
            "IS [bps]": m["IS [bps]"], "IS 95% CI": f"[{ci[name][0]:.2f}, {ci[name][1]:.2f}]",
            "Diff vs llm [bps]": t.get("mean_diff_bps", math.nan), "p (t)": t.get("t_p", math.nan),
            "p (Wilcoxon)": t.get("wilcoxon_p", math.nan), "p (t, Bonf.)": t.get("t_p_bonf", math.nan),
            "p (W, Bonf.)": t.get("wilcoxon_p_bonf", math.nan),
        })
    return pd.DataFrame(rows)
