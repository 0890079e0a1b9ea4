"""The ablation experiment's reading and tables (``experiments/ablations.py``): activity means, validation curves and
steps-to-threshold from a small run directory with known values (metrics.csv laid out as the training runs' CSV
logger writes it, ``hyperdapo.pipeline.run_files.MetricsCSV``: one row per log call, sorted columns, ``step`` last,
blank cells), finished and stopped runs, and the three tables assembled from small per-seed results (paired tests
equal to ``paired_tests`` called directly, a stopped run's seed left out)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hyperdapo.evaluation.stats import paired_tests
from hyperdapo.evaluation.tables import write_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import ablations as ab  # noqa: E402

SEEDS = [0, 1, 2]


def write_run(tmp_path, name: str, train_rows: list[dict], val: dict[int, float], n_train: int = 3411,
              finished: bool = True) -> Path:
    """A run directory: metrics.csv (train rows at steps 0.., a validation row after the train row of the 0-based step
    after which it ran, as the logger writes them), train.log and, if it finished, summary.json."""
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    rows = []
    for step, row in enumerate(train_rows):
        rows.append({**row, "step": step})
        if step in val:
            rows.append({"val/reward_mean": val[step], "val/valid_rate": 1.0, "step": step})
    metrics = pd.DataFrame(rows)
    metrics[sorted(set(metrics.columns) - {"step"}) + ["step"]].to_csv(run_dir / "metrics.csv", index=False)
    (run_dir / "train.log").write_text(
        "[2026-12-03 15:08:27,163][hyperdapo.execution.task][INFO] - decisions: 0.0 s\n"
        f"[2026-12-03 15:08:28,957][hyperdapo.pipeline.train_run][INFO] - task: 4212 decisions (train {n_train}, "
        "val 401, test 400)\n")
    if finished:
        (run_dir / "summary.json").write_text(json.dumps({"run_dir": str(run_dir), "train_seconds": 12.5}))
    return run_dir


RL_ROWS = [  # four RL steps with known activity
    {"train/clip_low": 0.01, "train/clip_high": 0.0, "train/kept_group_share": 0.5, "train/zero_std_group_share": 0.5,
     "train/overlong_share": 0.0, "train/truncated_share": 0.0, "train/answer_len_std": 1.0, "train/loss": 0.1},
    {"train/clip_low": 0.03, "train/clip_high": 0.02, "train/kept_group_share": 1.0,
     "train/zero_std_group_share": 0.25, "train/overlong_share": 0.5, "train/truncated_share": 0.5,
     "train/answer_len_std": 2.0, "train/loss": 0.1},
    {"train/clip_low": 0.0, "train/clip_high": 0.02, "train/kept_group_share": 0.25,
     "train/zero_std_group_share": 0.75, "train/overlong_share": 0.0, "train/truncated_share": 0.5,
     "train/answer_len_std": 0.0, "train/loss": 0.1},
    {"train/clip_low": 0.0, "train/clip_high": 0.0, "train/kept_group_share": 0.25, "train/zero_std_group_share": 0.5,
     "train/overlong_share": 0.0, "train/truncated_share": 0.0, "train/answer_len_std": 1.0, "train/loss": 0.1},
]


def test_activity_and_validation_curve_from_a_run_directory(tmp_path):
    run = ab.read_run(write_run(tmp_path, "dapo", RL_ROWS, val={1: -2.5, 3: -2.0}), stopped=False)
    activity = {col: run[col] for col in ab.ACTIVITY}
    assert activity == pytest.approx({"Clip-low [%]": 1.0, "Clip-high [%]": 1.0, "Kept groups [%]": 50.0,
                                      "Zero-std groups [%]": 50.0, "Overlong [%]": 12.5, "Truncated [%]": 25.0,
                                      "Answer-len std [tokens]": 1.0})
    assert run["curve"].index.tolist() == [2, 4] and run["curve"].tolist() == [-2.5, -2.0]  # after 2 and 4 steps
    assert run["val"] == -2.0 and np.isnan(run["stopped_at"]) and run["train_s"] == 12.5
    # a stopped run: the steps it did, its activity and curve so far, no final validation reward
    stopped = ab.read_run(write_run(tmp_path, "starved", RL_ROWS[:3], val={1: -2.5}, finished=False), stopped=True)
    assert stopped["stopped_at"] == 3 and np.isnan(stopped["val"]) and np.isnan(stopped["train_s"])
    assert stopped["Clip-high [%]"] == pytest.approx(4 / 3) and stopped["curve"].tolist() == [-2.5]
    # DPO logs none of the RL activity: every column is missing, not zero
    dpo = ab.read_run(write_run(tmp_path, "dpo", [{"train/loss": 0.5}] * 2, val={1: -3.0}), stopped=False)
    assert all(np.isnan(dpo[col]) for col in ab.ACTIVITY)
    assert ab.train_decisions(write_run(tmp_path, "x1", RL_ROWS, val={3: -2.0}, n_train=214)) == 214


def test_steps_to_threshold_is_the_first_validation_at_or_above_the_level():
    curve = pd.Series([-2.6, -2.3, -2.4, -2.1], index=[10, 20, 30, 40])
    assert ab.steps_to_threshold(curve, -2.3) == 20  # reaching the level exactly counts
    assert ab.steps_to_threshold(curve, -2.2) == 40
    assert ab.steps_to_threshold(curve, -2.0) == np.inf
    assert ab.format_steps(np.inf, 150) == "> 150" and ab.format_steps(40.0, 150) == "40"
    assert ab.format_steps(np.inf, 150, stopped_at=126) == "stopped at 126"
    assert ab.format_steps(40.0, 150, stopped_at=126) == "40"  # reached before dynamic sampling stopped it
    assert ab.ratio_text(20, 40, 150) == "0.50"
    assert ab.ratio_text(20, np.inf, 150) == "< 0.13"  # DPO not reached in 150: DAPO took under 20/150 of its steps
    assert ab.ratio_text(np.inf, 50, 150) == "> 3.00"
    assert ab.ratio_text(np.inf, np.inf, 150) == "–"


def test_run_plan_trains_every_variant_and_size_from_the_seeds_sft_start(tmp_path):
    keys = ab.rl_keys()
    assert list(keys) == [*ab.VARIANTS, "dapo-x1", "dapo-x4"]
    assert keys["dapo-x1"] == ["decisions.train_every=16"] and keys["dapo-x4"] == ["decisions.train_every=4"]
    args = type("Args", (), {"registry": str(tmp_path / "models"), "runs": str(tmp_path / "runs")})()
    kind, overrides, out = ab.train_job(2, "dpo", [*keys["dpo"], "model.init_from=S"], 150, args)
    assert kind == "train" and out == f"{tmp_path}/runs/ablation-s2-dpo"
    assert {"seed=2", "algo=dpo", f"optim.lr={ab.DPO_LR}", "model.init_from=S", "trainer.max_steps=150",
            "run_name=ablation-s2-dpo", "data.synthetic.seed=0", "decisions.seed=0"} <= set(overrides)
    kind, overrides, out = ab.evaluate_job(1, [tmp_path / "a", tmp_path / "b"], type("Args", (), {
        "registry": "R", "eval_dir": "E"})())
    assert kind == "evaluate" and out == "E/seed1" and f"evaluate.policies=[{tmp_path}/a,{tmp_path}/b]" in overrides


def seed_runs(seed: int) -> dict[str, dict]:
    """Per run key: known outcome, activity and validation curve (10-step validations up to 150 steps)."""
    runs = {}
    for k, key in enumerate(["sft", *ab.rl_keys()]):
        curve = pd.Series(-2.5 + 0.01 * k * np.arange(1, 16), index=np.arange(10, 160, 10))
        act = {col: (np.nan if key in ("sft", "dpo") else 10.0 * k + seed) for col in ab.ACTIVITY}
        runs[key] = {"is": 2.0 + 0.1 * k + 0.01 * seed, "val": curve.iloc[-1], "curve": curve, "train_s": 100.0,
                     "stopped_at": np.nan, **act}
    runs["sft"]["val"] = -2.5
    return runs


def pooled_is(rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for seed in SEEDS:
        base = rng.normal(3.0, 5.0, 50)
        frame = pd.DataFrame({key: base + 0.1 * k + rng.normal(0, 0.5, 50)
                              for k, key in enumerate(["sft", *ab.rl_keys()])})
        frame["seed"] = seed
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_ablation_table_shows_activity_next_to_outcome_with_the_paired_tests(tmp_path):
    pooled, runs = pooled_is(np.random.default_rng(0)), [seed_runs(s) for s in SEEDS]
    table = ab.ablation_table(pooled, runs, SEEDS).set_index("Variant")
    assert list(table.index) == [label for label, _ in ab.VARIANTS.values()] + ["sft start"]
    keys = list(ab.rl_keys())
    k = 1 + keys.index("no-clip-higher")  # its activity is 10 k + seed: mean 10 k + 1, sd 1 over seeds 0, 1, 2
    row = table.loc["no clip-higher (eps_high 0.20)"]
    assert row["Clip-high [%]"] == f"{10 * k + 1:.2f} ± 1.00" and row["Kept groups [%]"] == f"{10 * k + 1:.1f} ± 1.0"
    assert row["Test IS [bps]"] == f"{2.0 + 0.1 * k + 0.01:.2f} ± 0.01" and row["Reference"] == "dapo"
    expected = paired_tests({"x": pooled["no-clip-higher"].to_numpy()}, pooled["dapo"].to_numpy(), n_comparisons=7)["x"]
    assert row["p (t, Bonf.)"] == pytest.approx(expected["t_p_bonf"])
    assert row["Diff vs reference [bps]"].startswith(f"{expected['mean_diff_bps']:+.2f} [")
    per_seed = (pooled["no-clip-higher"] - pooled["dapo"]).groupby(pooled["seed"]).mean()
    assert row["per seed"] == " ".join(f"{x:+.2f}" for x in per_seed)
    assert table.loc["dapo", "Reference"] == "sft"  # full DAPO against its SFT start
    assert table.loc["dpo", "Clip-low [%]"] == "–" and table.loc["sft start", "Reference"] == "–"
    assert np.isnan(table.loc["sft start", "p (t, Bonf.)"])
    md = write_table(table.reset_index(), tmp_path, "ablations", "Caption.", policies=("dapo",))[0].read_text()
    assert "| **dapo** |" in md and "| sft start |" in md


def test_steps_table_median_over_seeds_and_ratio_to_dpo():
    runs = [seed_runs(s) for s in SEEDS]
    # threshold -2.5 + 0.25: run k's curve -2.5 + 0.01 k t reaches it at the t-th validation with t >= 25 / k
    table = ab.steps_table(runs, [-2.25] * 3, ab.THRESHOLD_ALGOS, 150, SEEDS, ratio_to="dpo").set_index("Policy")
    keys = ["sft", *ab.rl_keys()]
    steps = {key: 10 * int(np.ceil(25 / keys.index(key) - 1e-9)) for key in ab.THRESHOLD_ALGOS}
    reached = {key: s for key, s in steps.items() if s <= 150}
    assert reached and len(reached) < len(steps)  # the example has runs that reach it and one that does not
    for key, s in steps.items():
        shown = f"{s}" if s <= 150 else "> 150"
        assert table.loc[key, "Steps seed 0"] == shown and table.loc[key, "Median steps"] == shown
        assert table.loc[key, "Reached"] == ("3/3" if s <= 150 else "0/3")
    assert table.loc["dpo", "Median / dpo median"] == "1.00"
    assert table.loc["grpo", "Median / dpo median"] == f"{steps['grpo'] / steps['dpo']:.2f}"
    assert table.loc["dapo", "Median / dpo median"] == f"> {150 / steps['dpo']:.2f}"  # dapo not reached in 150


def test_data_size_table_compares_each_size_with_x16():
    pooled, runs = pooled_is(np.random.default_rng(1)), [seed_runs(s) for s in SEEDS]
    table = ab.data_size_table(pooled, runs, [-2.25] * 3, {"dapo": 3411, "dapo-x4": 853, "dapo-x1": 214}, 150, SEEDS)
    table = table.set_index("Data")
    assert list(table.index) == ["x1 (train_every 16)", "x4 (train_every 4)", "x16 (train_every 1)"]
    assert table["n train decisions"].tolist() == [214, 853, 3411]
    expected = paired_tests({"x": pooled["dapo-x1"].to_numpy()}, pooled["dapo"].to_numpy(), n_comparisons=2)["x"]
    assert table.loc["x1 (train_every 16)", "p (t, Bonf.)"] == pytest.approx(expected["t_p_bonf"])
    assert table.loc["x16 (train_every 1)", "Diff vs x16 [bps]"] == "–"


def test_a_stopped_run_leaves_its_seed_out_of_the_outcome_and_the_paired_test():
    pooled, runs = pooled_is(np.random.default_rng(2)), [seed_runs(s) for s in SEEDS]
    key, label = "no-overlong-shaping", ab.VARIANTS["no-overlong-shaping"][0]
    runs[1][key] |= {"stopped_at": 126.0, "is": np.nan, "val": np.nan}
    pooled.loc[pooled["seed"] == 1, key] = np.nan  # no final policy, no backtest row
    row = ab.ablation_table(pooled, runs, SEEDS).set_index("Variant").loc[label]
    assert row["Stopped (starved)"] == "seed 1 at 126"
    k = 1 + list(ab.rl_keys()).index(key)
    assert row["Test IS [bps]"] == f"{2.0 + 0.1 * k + 0.01:.2f} ± 0.01"  # seeds 0 and 2: 2.0 + 0.1 k + 0.00 / 0.02
    kept = pooled[pooled["seed"] != 1]
    expected = paired_tests({"x": kept[key].to_numpy()}, kept["dapo"].to_numpy(), n_comparisons=7)["x"]
    assert row["p (t, Bonf.)"] == pytest.approx(expected["t_p_bonf"]) and len(row["per seed"].split()) == 2
    assert ab.mean_sd([np.nan, np.nan]) == "–" and ab.mean_sd([1.0, np.nan]) == "1.00"
