# HyperDAPO — every command a user needs. `make help` lists them.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
PYTEST  := $(PY) -m pytest

.PHONY: help install test test-fast demo bench lint clean tables thesis ablations evidence evidence-real evidence-sequential demo-sequential walkforward robustness

help:
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*##/\t/'

install: ## create .venv, install torch==2.13.0 (CPU) first, then the package with dev + qwen_vocab extras
	python3 -m venv .venv
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,qwen_vocab]'

test: lint ## ruff, then the whole test suite (the command CI runs)
	$(PYTEST) -q --durations=30

test-fast: lint ## the inner loop: ruff, then every test not marked slow (< 3 min; `make test` runs them all)
	$(PYTEST) -q -m "not slow"

bench: ## run every benchmark; each prints a last line `RESULT name=value`
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: ## ruff check
	$(PY) -m ruff check hyperdapo tests benchmarks experiments *.py

DEMO      := experiment=demo
DEMO_SFT  := outputs/models/BTC/demo-sft
DEMO_DAPO := outputs/models/BTC/demo-dapo
DEMO_PPO  := outputs/models/BTC/demo-ppo

demo: ## synthetic BTC data -> SFT -> DAPO, and the PPO baseline -> one backtest of both -> tables and figures, CPU (a few minutes)
	$(PY) train.py $(DEMO) algo=sft trainer.max_steps=400 optim.lr=3e-3 run_name=demo-sft overwrite=true
	$(PY) train.py $(DEMO) algo=dapo algo.sft_warmup_steps=0 trainer.max_steps=500 optim.lr=1e-4 \
		algo.max_gen_batches=32 model.init_from=$(DEMO_SFT) run_name=demo-dapo overwrite=true
	$(PY) train.py $(DEMO) algo=ppo run_name=demo-ppo overwrite=true
	$(PY) evaluate.py $(DEMO) 'evaluate.policies=[$(DEMO_DAPO),$(DEMO_PPO)]'
	$(PY) experiments/make_tables.py
	@echo "demo done: outputs/tables/ (all runs) and the newest outputs/eval/BTC/*/ (tables/, figures/)"

tables: ## tables and figures from finished runs (registry + evaluations) into outputs/tables; a selection: make tables ARGS="--runs demo-dapo" (or --tags TAG)
	$(PY) experiments/make_tables.py $(ARGS)

thesis: ## all four assets with experiment=thesis asset=<ASSET> (prints the plan and expected cost; needs a GPU)
	$(PY) experiments/thesis.py

ablations: ## DAPO ablations over 3 seeds: component activity next to test IS, steps-to-threshold (DAPO/GRPO/DPO), data-size sweep -> outputs/tables/ablations*.* (~35 min)
	$(PY) experiments/ablations.py

evidence: ## SFT, SFT->DAPO/GRPO/DPO and PPO over 3 seeds on the demo market, pooled paired tests -> outputs/tables/evidence.* (~40 min)
	$(PY) experiments/evidence.py

evidence-real: ## the same on the real StandX BTC recording (../shared/data/standx): SFT, SFT->DAPO/GRPO, PPO over 3 seeds -> outputs/tables/evidence_standx_btc.*
	$(PY) experiments/evidence.py --preset standx_btc --policies sft dapo grpo ppo --seeds 0 1 2 --sft-steps 1500 \
		--rl-steps 60 --rl-lr 3e-5 --max-gen-batches 8

evidence-sequential: ## sequential execution (issue 22), the episode as the unit: PPO on HyperDAPO/Execution-v0 and every sequential baseline vs the validation-chosen baseline and the one-shot offset held to T -> outputs/tables/sequential_demo.*, sequential_examples_demo.* (~10 min); ARGS="--preset standx_btc --seeds 0 1 2" for more
	$(PY) experiments/sequential_eval.py $(ARGS)

SEQ_SEEDS ?= 0
SEQ_RUNS  := $(foreach s,$(SEQ_SEEDS),outputs/models/BTC/demo-seq-sft-s$(s) outputs/models/BTC/demo-seq-dapo-s$(s))
demo-sequential: ## the multi-turn LLM on sequential execution (issue 22): per seed (SEQ_SEEDS="0 1 2"), SFT on the sequential baseline best on train, then multi-turn DAPO; then the episode evaluation with PPO, every sequential baseline, the SFT and DAPO policies (and demo-dapo's one-shot answer held to T, if trained) -> outputs/tables/sequential_demo_sequential.*, sequential_starts_demo_sequential.*
	for s in $(SEQ_SEEDS); do \
		$(PY) train.py experiment=demo_sequential algo=sft trainer.max_steps=100 optim.lr=3e-3 seed=$$s \
			run_name=demo-seq-sft-s$$s overwrite=true && \
		$(PY) train.py experiment=demo_sequential algo=dapo algo.sft_warmup_steps=0 trainer.max_steps=30 optim.lr=1e-3 \
			trainer.val_every_n_steps=10 algo.temperature=1.5 algo.max_gen_batches=8 algo.on_starvation=continue \
			seed=$$s model.init_from=outputs/models/BTC/demo-seq-sft-s$$s run_name=demo-seq-dapo-s$$s overwrite=true \
			|| exit 1; \
	done
	$(PY) experiments/sequential_eval.py --preset demo_sequential --seeds $(SEQ_SEEDS) \
		--policies $(SEQ_RUNS) $(wildcard $(DEMO_DAPO))

walkforward: ## walk-forward: 6 synthetic days, train on 2, test on the next, 4 windows (SFT->DAPO, then DAPO continued) -> outputs/tables/walk_forward.* (32 min on the loaded 2 cores)
	$(PY) experiments/walk_forward.py

robustness: ## every baseline (and the policies of ARGS="--policies demo-dapo demo-ppo") under every conf/scenario/ stress on the clean market's test decisions: IS(scenario) - IS(clean), paired tests -> outputs/tables/robustness.*
	$(PY) experiments/robustness.py $(ARGS)

clean: ## remove caches and generated data (keeps .venv)
	rm -rf .pytest_cache .ruff_cache data/cache outputs/*/ benchmarks/.out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
