"""One home per config value: a config group option (conf/<group>/*.yaml, conf/train.yaml, conf/evaluate.yaml)
holds only what it sets differently from the typed schema's defaults (hyperdapo/pipeline/config.py and the
dataclasses it composes). A value written in both places drifts (``sft_warmup_steps`` was 100 in YAML and 0 in
the schema). Experiment presets are overrides by design and are not checked."""

from __future__ import annotations

import yaml
from omegaconf import OmegaConf

from hyperdapo.pipeline.config import RunConfig
from tests.pipeline_helpers import REPO

SELECTORS = {"name", "source"}  # the option's own name: equal to the default for the default option


def _leaves(d: dict, prefix: tuple = ()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, (*prefix, k))
        else:
            yield (*prefix, k), v


def _duplicates() -> list[str]:
    schema = OmegaConf.to_container(OmegaConf.structured(RunConfig), resolve=False)
    conf, found = REPO / "conf", []
    for path in sorted(conf.rglob("*.yaml")):
        if path.parent.name == "experiment":
            continue
        text = path.read_text()
        values = yaml.safe_load(text) or {}
        values.pop("defaults", None)
        values.pop("hydra", None)
        package = next((line.split("@package", 1)[1].strip() for line in text.splitlines() if "@package" in line),
                       path.parent.name)  # a group's option sits at its package (the group's name by default)
        root = values
        if package != "_global_" and path.parent != conf:
            for key in reversed(package.split(".")):
                root = {key: root}
        for keys, value in _leaves(root):
            node = schema
            for k in keys:
                node = node.get(k, KeyError) if isinstance(node, dict) else KeyError
            if node == value and keys[-1] not in SELECTORS:
                found.append(f"{path.relative_to(REPO)}: {'.'.join(keys)}={value!r}")
    return found


def test_no_value_is_written_in_yaml_and_in_the_schema():
    assert _duplicates() == []


def test_the_default_run_does_what_the_readme_says():
    from tests.pipeline_helpers import run_config

    cfg = run_config([])
    assert cfg.algo.name == "dapo" and cfg.algo.sft_warmup_steps < cfg.trainer.max_steps  # DAPO steps do run
    assert cfg.prompt.style == "compact" and cfg.model.name == "tiny"
    assert run_config(["model=qwen2_5_7b"]).prompt.style == "full"


def test_one_root_seed_reaches_market_decisions_and_model():
    from tests.pipeline_helpers import run_config

    cfg = run_config(["seed=7"])
    assert (cfg.seed, cfg.data.synthetic.seed, cfg.decisions.seed, cfg.model.seed) == (7, 7, 7, 7)
    assert run_config(["seed=7", "data.synthetic.seed=0"]).data.synthetic.seed == 0  # pinned on purpose
