"""Is there a state-dependent offset that beats the best fixed one on validation? Reward models on the features.

    .venv/bin/python experiments/learnability.py [--preset standx_btc] [--seeds 0 1 2] [--epochs 300]

Builds the preset's task (``train.py experiment=<preset>``'s decisions, features and simulator), scores every offset
of ``algo.label_offsets_bps`` on every decision, and fits two reward models on the training split only, on the
PPO baseline's observation (the clipped causal z-features, side and objective, :func:`~hyperdapo.rl.gym_env.observe`),
with the models of :mod:`hyperdapo.rl.reward_model` (the MLP is also the ``algo.label_teacher=reward_model`` teacher):

- ridge: one linear regression of the reward (bps) per offset, the penalty chosen on validation;
- MLP: a 64x64 tanh network regressing all offsets' rewards at once (Adam, lr 1e-3, minibatch 128), one per seed,
  its epoch (every 20) chosen on validation;
- ridge on the prompt's features: the ``algo.label_teacher=ridge`` rule, on the z-features the compact prompt shows
  (side-relative; :func:`~hyperdapo.prompts.render.compact_z_features` of the preset's ``prompt``).

A model's rule answers the offset of highest predicted reward. The table compares each rule with the fixed offset
that is best on validation (the baselines' rule), on validation (where the choices were made) and on test (read
once, for the table): mean reward difference (bps, positive = the rule earns more) and its paired t-test p, and
the share of decisions the rule answers something other than the fixed offset. Writes
``outputs/tables/learnability_<preset>.{md,tex,csv,caption.txt}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from hyperdapo.evaluation.tables import write_table
from hyperdapo.execution.preferences import offset_rewards
from hyperdapo.features.decision_set import Split
from hyperdapo.pipeline.config import compose_run_config
from hyperdapo.pipeline.train_run import build_task
from hyperdapo.prompts.render import compact_z_features
from hyperdapo.rl.gym_env import observe
from hyperdapo.rl.reward_model import fit_mlp, prompt_observation, ridge_choose, ridge_predict

SPLITS = (Split.TRAIN, Split.VAL, Split.TEST)


def row(name: str, r: dict, choice: dict, fixed: int, chosen_by: str) -> dict:
    out = {"Rule": name, "Chosen on validation": chosen_by}
    for s in (Split.VAL, Split.TEST):
        diff = r[s][np.arange(len(r[s])), choice[s]] - r[s][:, fixed]
        out[f"{s.value} diff [bps]"] = diff.mean()
        out[f"p (t) {s.value}"] = stats.ttest_1samp(diff, 0.0).pvalue if diff.any() else np.nan
        out[f"{s.value} not fixed [%]"] = 100 * (choice[s] != fixed).mean()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="standx_btc")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--out", default="outputs/tables")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = compose_run_config([f"experiment={args.preset}"])
    task = build_task(cfg)
    grid = np.asarray(cfg.algo.label_offsets_bps, dtype=np.float64)
    idx = {s: task.split_index(s) for s in SPLITS}
    x = {s: observe(task, i) for s, i in idx.items()}
    r = {s: offset_rewards(task, i, grid) for s, i in idx.items()}  # (N, K) bps per split
    fixed = int(r[Split.VAL].mean(axis=0).argmax())  # the fixed offset best on validation
    rows = []
    w, lam = ridge_choose(x[Split.TRAIN], r[Split.TRAIN], x[Split.VAL], r[Split.VAL])
    rows.append(row("ridge", r, {s: ridge_predict(w, x[s]).argmax(1) for s in SPLITS}, fixed, f"lambda {lam:g}"))
    shown = compact_z_features(cfg.prompt)  # the algo.label_teacher=ridge rule: what the prompt shows, side-relative
    xp = {s: prompt_observation(task, i, shown) for s, i in idx.items()}
    w, lam = ridge_choose(xp[Split.TRAIN], r[Split.TRAIN], xp[Split.VAL], r[Split.VAL])
    rows.append(row("ridge, prompt's features", r, {s: ridge_predict(w, xp[s]).argmax(1) for s in SPLITS}, fixed,
                    f"lambda {lam:g}"))
    for seed in args.seeds:
        model = fit_mlp(x[Split.TRAIN], r[Split.TRAIN], x[Split.VAL], r[Split.VAL], seed, args.epochs)
        rows.append(row(f"MLP seed {seed}", r, {s: model.choose(x[s]) for s in SPLITS}, fixed, f"epoch {model.epoch}"))
    table = pd.DataFrame(rows)
    means = ", ".join(f"{o:+g}: {m:.2f}" for o, m in zip(grid, r[Split.VAL].mean(axis=0), strict=True))
    caption = (f"Learnability on experiment={args.preset} ({len(idx[Split.TRAIN])} / {len(idx[Split.VAL])} / "
               f"{len(idx[Split.TEST])} train / validation / test decisions): rules answering the offset of highest "
               "predicted reward, from reward models fitted on the training split on the PPO baseline's features "
               "(ridge per offset; 64x64 MLP, one per seed), settings chosen on validation, against the fixed offset "
               f"best on validation ({grid[fixed]:+g} bps; validation mean reward per offset, bps: {means}). Diff = "
               "mean reward (bps) of the rule minus the fixed offset's, positive = the rule is better; p: paired t; "
               "not fixed: share of decisions the rule answers another offset. The test split is read once, for "
               f"this table. Wall time {(time.perf_counter() - t0) / 60:.1f} min "
               f"(`.venv/bin/python experiments/learnability.py --preset {args.preset}`).")
    write_table(table, Path(args.out), f"learnability_{args.preset}", caption, policies=())
    print(Path(args.out, f"learnability_{args.preset}.md").read_text())


if __name__ == "__main__":
    main()
