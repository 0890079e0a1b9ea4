"""Export a registered policy as one folder that loads with transformers (and peft for adapters) alone.

The folder holds the weights (the full model, or the LoRA adapters; ``merge=True`` folds adapters into their
base and writes the full model), the tokenizer with its chat template, ``config.yaml`` (the run config),
``summary.json`` (the training summary) and ``README.md``: a model card with the data span, the training
metrics, an example prompt and the code that loads the folder and reads an answer. A LoRA policy on the
in-process tiny model has no base another user could load, so it is always merged. The folder is written
into a temporary sibling that replaces nothing: an existing ``out_dir`` is an error. The policy's weights are
checked first (:func:`hyperdapo.export.weights.check_weights`): a damaged file is an error naming it, never copied.
The card's venue, fees and data come from the run's config.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import AutoTokenizer

from hyperdapo.atomic import atomic_dir
from hyperdapo.data.config import DataSource
from hyperdapo.data.schema import Side
from hyperdapo.export.weights import check_weights
from hyperdapo.features.config import Objective
from hyperdapo.models.config import TINY, TINY_QWEN_VOCAB
from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.trained import DecisionInput, checked_policy, decision_prompt, load_trained

EXAMPLE_FEATURES = {  # an illustrative BTC state for the card's example prompt (USD, bps, z-scores)
    "mid_usd": 42_000.5, "best_bid_usd": 42_000.0, "best_ask_usd": 42_001.0, "spread_bps": 0.24,
    "imbalance_top5": 0.31, "microprice_offset_bps": 0.03, "book_pressure_50bps": 0.12, "volatility_5m_bps": 0.6,
    "volatility_5m_bps_z": -0.4, "momentum_1m_bps": 0.5, "momentum_5m_bps": -2.0, "momentum_15m_bps": 4.1,
    "trade_flow_5m": -3.2, "trade_flow_5m_z": -1.1, "trade_intensity_per_min": 42.0, "mid_vs_vwap_5m_bps": 0.8,
}
RUN_FILES = ("config.yaml", "summary.json")


def data_span(cfg: RunConfig) -> str:
    """Where and when the policy's training data came from, in one sentence."""
    d = cfg.data
    if d.source is DataSource.SYNTHETIC:
        s = d.synthetic
        return (f"synthetic market (hyperdapo.data.synthetic, seed {s.seed}), {s.n_days:g} day(s) from "
                f"{s.start_date}, in Tardis.dev's file formats")
    if d.source is DataSource.TARDIS:
        t = d.tardis
        return (f"Tardis.dev {t.exchange} {', '.join(t.symbols)} {' + '.join(t.data_types)}, {t.from_date} to "
                f"{t.to_date} (exclusive)")
    if d.source is DataSource.FILES:
        f = d.files
        return f"local files: book {', '.join(f.book or f.incremental)}; trades {', '.join(f.trades) or 'none'}"
    return f"Hyperliquid l2Book archive (book only), files {', '.join(d.archive_files)}"


def venue_text(cfg: RunConfig) -> str:
    """The venue the policy's orders were simulated on, with its fees and latency (``conf/venue/<name>.yaml``)."""
    v = cfg.venue
    return (f"{v.name} (maker {v.maker_fee_bps:g} / taker {v.taker_fee_bps:g} bps fees, {v.latency_ms:g} ms latency, "
            f"`conf/venue/{v.name}.yaml`)")


def model_card(cfg: RunConfig, summary: dict, example_prompt: str, adapters: bool, command: str) -> str:
    """The README.md of an exported folder."""
    dec = cfg.decisions
    final = summary.get("final", {})
    metrics = "\n".join(f"| {k} | {v:.4g} |" for k, v in sorted(final.items())) or "| (none recorded) | |"
    if adapters:
        load = ("from peft import AutoPeftModelForCausalLM\n"
                "model = AutoPeftModelForCausalLM.from_pretrained(folder)  # loads the base named in "
                "adapter_config.json")
    else:
        load = "from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained(folder)"
    prefix_code = '"BUY LIMIT" + ' if cfg.prompt.prefill_side else ""
    prefill_note = (", followed by the prefilled start of the answer `<SIDE> LIMIT`: the model writes only the offset"
                    if cfg.prompt.prefill_side else "")
    return f"""# HyperDAPO policy: {cfg.asset.name}, {cfg.algo.name.value} ({Path(summary.get('policy_dir', '?')).name})

A language model that places one limit order for a {cfg.asset.name} perpetual on {venue_text(cfg)}.
It reads the market state and the task ({cfg.prompt.style} prompt) and answers `BUY|SELL LIMIT <offset> bps`, the
offset measured from the mid price in bps, side-relative (negative = passive: a buy below mid). Trained with HyperDAPO
(`{cfg.algo.name.value}`, reward `{cfg.reward.name}`: minus the implementation shortfall in bps, fees and the
cleanup market order at the horizon included).

## Training

- Model: `{cfg.model.name}`, {'LoRA adapters' if adapters else 'full weights'}, dtype {cfg.model.dtype}; \
{summary.get('trainable_params', 0):,} trainable of {summary.get('total_params', 0):,} parameters.
- Data: {data_span(cfg)}.
- Decisions every {dec.every_s:g} s, horizon {dec.horizon_s:g} s; chronological splits train {dec.train_frac:g} / \
validation {dec.val_frac:g} / test {1 - dec.train_frac - dec.val_frac:.2g}, embargo {dec.embargo_s:g} s.
- {summary.get('steps', '?')} training steps ({summary.get('optimizer_steps', '?')} optimiser steps), fit \
{summary.get('fit_seconds', float('nan')):.0f} s. The full run config is `config.yaml`, the run summary `summary.json`.

| Final metric (validation rewards in bps) | Value |
|---|---|
{metrics}

These are training-time numbers on the run's own data, not a backtest; `evaluate.py evaluate.policy=<folder>`
compares a policy with the baselines on a test split.

## Use

```python
from transformers import AutoTokenizer
folder = "<this folder>"
tokenizer = AutoTokenizer.from_pretrained(folder)
{load}
model.eval()
prompt = {example_prompt!r}
ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
out = model.generate(**ids, do_sample=False, max_new_tokens={cfg.algo.max_new_tokens},
                     eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id)
answer = {prefix_code}tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
```

The prompt is the chat template applied to the messages HyperDAPO writes (`hyperdapo.prompts.render.build_messages`)\
{prefill_note}. The example above is an illustrative {cfg.asset.name} state.
`hyperdapo.prompts.answer.parse_answer` turns an answer into a limit price on the tick grid (or a reject reason).

Exported with `{command}`.
"""


def export_policy(policy_dir: Path | str, out_dir: Path | str, merge: bool = False) -> Path:
    """Write the export folder ``out_dir`` of the registered policy ``policy_dir`` (see the module docstring)."""
    policy_dir, out_dir = Path(policy_dir), Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"out_dir={out_dir} exists; choose a new folder")
    policy_dir, cfg = checked_policy(policy_dir)
    check_weights(policy_dir)
    adapters = (policy_dir / "adapter_config.json").exists()
    merge = adapters and (merge or cfg.model.name in (TINY, TINY_QWEN_VOCAB))
    with atomic_dir(out_dir) as tmp:
        if merge:
            policy = load_trained(policy_dir)
            policy.model.merge_and_unload().save_pretrained(tmp)
            policy.tokenizer.save_pretrained(tmp)
        else:
            shutil.copytree(policy_dir, tmp, dirs_exist_ok=True)
        for name in RUN_FILES:
            if (policy_dir / name).exists():
                shutil.copy2(policy_dir / name, tmp / name)
        summary = json.loads((policy_dir / "summary.json").read_text()) if (policy_dir / "summary.json").exists() \
            else {}
        example = DecisionInput(EXAMPLE_FEATURES, Side.BUY, 0.25, Objective.PATIENT, cfg.decisions.horizon_s)
        prompt = decision_prompt(cfg, AutoTokenizer.from_pretrained(tmp), example)
        command = f"python -m hyperdapo.export {policy_dir} {out_dir}" + (" --merge" if merge else "")
        (tmp / "README.md").write_text(model_card(cfg, summary, prompt, adapters and not merge, command))
    return out_dir
