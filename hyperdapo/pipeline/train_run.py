"""One training run: market -> task -> policy -> Lightning fit -> policy in the registry.

Outputs in the run directory: ``metrics.csv``, ``checkpoints/`` (``last.ckpt`` and ``step-000020.ckpt`` every
``trainer.ckpt_every_n_steps`` training steps; see :mod:`hyperdapo.pipeline.run_files`), ``config.yaml`` (the
resolved config; no secrets are ever in it), ``summary.json``; the trained policy goes to
``<registry_dir>/<ASSET>/<run_name>/`` with the same config. Only rank 0 writes files. Every "step" is a training
step (one SFT/DPO batch or one RL rollout batch); optimiser steps are reported as ``optimizer_steps``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from hyperdapo.atomic import write_text_atomic
from hyperdapo.data.sources import load_market, market_files
from hyperdapo.evaluation.sequential_metrics import sequential_baselines, sft_teacher
from hyperdapo.execution.daily import DaySpec, day_task
from hyperdapo.execution.preferences import preference_pairs, save_table, with_teacher_labels
from hyperdapo.execution.tape import DayLoader, day_files
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split, empty_split, too_few_decisions
from hyperdapo.models.policy import load_policy, policy_device, save_policy, trainable_parameters
from hyperdapo.pipeline.best_checkpoint import MONITOR, BestValidation, load_best
from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.console import quiet_third_party
from hyperdapo.pipeline.preemption import StopOnSignal
from hyperdapo.pipeline.progress import StepProgressBar
from hyperdapo.pipeline.run_files import (
    AtomicCheckpointIO,
    MetricsCSV,
    StepCheckpoints,
    checkpoint_step,
    resolve_checkpoint,
)
from hyperdapo.prompts.render import compact_z_features
from hyperdapo.rl.config import AlgoName
from hyperdapo.rl.data import ExecutionDataModule, OfflineBatches
from hyperdapo.rl.module import PolicyModule, optimizer_steps
from hyperdapo.rl.multiturn import TurnBatches, grammar_corpus, turn_dataset
from hyperdapo.timing import timed

log = logging.getLogger(__name__)


class StopAfter(L.Callback):
    """Stop the fit after ``n`` training steps (the run's end, or ``trainer.stop_after_steps``: an interruption)."""

    def __init__(self, n: int):
        self.n = n

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if module.train_batches >= self.n:
            trainer.should_stop = True


def build_task(cfg: RunConfig) -> ExecutionTask:
    """The run's task (decisions, features, prompts, tape); a split without decisions is an error that names the
    keys deciding the splits and settings derived from the data's span that fill each split."""
    quiet_third_party()  # every run (train, evaluate, in-process) builds its task first
    if cfg.data.day_by_day:
        spec = DaySpec(cfg.asset, cfg.venue, cfg.decisions, cfg.features, cfg.execution, cfg.reward)
        files = market_files(cfg.asset, cfg.data)
        task = day_task(files, spec, cfg.prompt, Path(cfg.data.cache_dir) / "days", cfg.data.cache_dir,
                        cfg.data.days_in_memory)
        span_us = lambda: DayLoader(cfg.asset.name, day_files(files), Path(cfg.data.cache_dir)).book_span_us  # noqa: E731
    else:
        with timed(log, f"market data ({cfg.asset.name}, {cfg.data.source.value})"):
            market = load_market(cfg.asset, cfg.data)
        task = ExecutionTask.build(cfg.asset, cfg.venue, market, cfg.decisions, cfg.features, cfg.execution,
                                   cfg.reward, cfg.prompt)
        span_us = lambda: (int(market.book.ts_us[0]), int(market.book.ts_us[-1]))  # noqa: E731
    split = empty_split(task.decisions)
    if split is not None:
        raise ValueError(too_few_decisions(split, 0, cfg.decisions, span_us()))
    return task


def tokenizer_corpus(task: ExecutionTask) -> list[str]:
    """Texts the tiny BPE is trained on: every prompt message of the training split and every answer form (one-shot
    and multi-turn)."""
    texts = [m["content"] for i in task.split_index(Split.TRAIN) for m in task.messages[i]]
    texts += [f"{s} LIMIT {o:.1f} bps" for s in ("BUY", "SELL") for o in range(-200, 201)]
    texts += grammar_corpus()
    texts += ["<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"] * 100
    return texts


def sweep_name() -> str | None:
    """The multirun's sweep directory name (W&B groups every job of a sweep), None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir).name


def wandb_names(cfg: RunConfig, out: Path) -> tuple[str | None, str]:
    """The W&B group and name of a training (``job_type=train``) or evaluation (``job_type=eval``) run, so that a
    sweep's or an experiment's runs compare side by side: the group is ``logger.group``, else the multirun's sweep,
    else the experiment preset, else ``run_name``; the name is ``run_name``, else the job's overrides (Hydra), else
    the output directory's name."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    experiment = hydra.runtime.choices.get("experiment") if hydra is not None else None
    overrides = hydra.job.override_dirname if hydra is not None else ""
    return cfg.logger.group or sweep_name() or experiment or cfg.run_name or None, cfg.run_name or overrides or out.name


def make_loggers(cfg: RunConfig, out: Path, tags: list[str], resume_step: int | None):
    loggers = [MetricsCSV(out, resume_step)]
    if cfg.logger.name == "wandb":
        os.environ.setdefault("WANDB_MODE", cfg.logger.mode)
        group, name = wandb_names(cfg, out)
        wandb_logger = WandbLogger(project=cfg.logger.project, save_dir=str(out), group=group, name=name,
                                   job_type="train", tags=sorted({*cfg.logger.tags, *tags}),
                                   config=OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
        # Lightning passes anonymous=None to wandb.init, which wandb >= 0.19 answers with a deprecation warning on
        # every run; the run is still created lazily, on rank zero only.
        wandb_logger._wandb_init.pop("anonymous", None)
        loggers.append(wandb_logger)
    return loggers


def run_training(cfg: RunConfig, out_dir: Path) -> dict:
    """Train the policy of ``cfg``; returns the summary (also written to ``summary.json``)."""
    out_dir = Path(out_dir)
    check_registry_entry(cfg, policy_dir_of(cfg, out_dir))
    resolve_checkpoint(cfg.ckpt_path, out_dir)  # fail before building anything
    L.seed_everything(cfg.seed, workers=True)
    t0 = time.perf_counter()
    task = build_task(cfg)
    log.info("task: %d decisions (train %d, val %d, test %d)", len(task.decisions),
             *(len(task.split_index(s)) for s in Split))
    if cfg.algo.name is AlgoName.PPO:  # the feature-vector baseline: stable-baselines3, not a Lightning fit
        from hyperdapo.rl.ppo import run_ppo

        with timed(log, f"training (ppo, {cfg.algo.ppo.total_timesteps} env steps)"):
            return run_ppo(task, cfg.algo.ppo, cfg.seed, out_dir, policy_dir_of(cfg, out_dir),
                           OmegaConf.to_yaml(OmegaConf.structured(cfg)),
                           {"asset": cfg.asset.name, "run_dir": str(out_dir)})
    model, tokenizer = load_policy(cfg.model, corpus=tokenizer_corpus(task),
                                   device=policy_device(cfg.trainer.accelerator))
    with timed(log, f"training ({cfg.algo.name.value}, {cfg.trainer.max_steps} steps)"):
        return fit_policy(cfg, task, model, tokenizer, out_dir, t0)


def policy_dir_of(cfg: RunConfig, out_dir: Path) -> Path:
    """The registry entry of this run: ``<registry_dir>/<ASSET>/<run_name or algo-<run dir name>>``; a multirun
    job's run dir name is its sweep's and its own (``<sweep>_<job subdir>``), so two sweeps never share a name."""
    run_dir = out_dir.name if sweep_name() is None else f"{sweep_name()}_{out_dir.name}"
    return Path(cfg.registry_dir) / cfg.asset.name / (cfg.run_name or f"{cfg.algo.name.value}-{run_dir}")


_CLAIMS: dict[Path, tuple[int, RunConfig]] = {}  # registry entries this process trains: lock file fd, the run's cfg


def check_registry_entry(cfg: RunConfig, policy_dir: Path) -> None:
    """Claim ``policy_dir`` for this run and refuse to overwrite another run's policy unless ``overwrite=true`` (a
    resumed run may replace its own).

    A run calls this when it starts and again just before it saves its policy. The first call claims the entry with
    an exclusive ``flock`` on ``<ASSET>/.<run_name>.lock`` (the kernel drops it when the process ends, even killed):
    while this run trains, another process training the same name, ``overwrite=true`` or not, fails at its start
    naming this process, so two trainings never both finish and write one entry. The second call by the same run
    (the same ``cfg`` object) checks the entry once more and lets the claim go; a run that started while this one
    saved finds its summary at its own last check. A later run of the same process (a resume) takes the claim over;
    ranks other than 0, which never write the registry, claim nothing."""
    key = policy_dir.resolve()
    held = _CLAIMS.get(key)
    try:
        _refuse_other_policy(cfg, policy_dir)
    finally:
        if held is not None and held[1] is cfg:
            os.close(_CLAIMS.pop(key)[0])
    if held is not None and held[1] is not cfg:
        _CLAIMS[key] = (held[0], cfg)
    elif held is None and rank_zero_only.rank == 0:
        _CLAIMS[key] = (_lock_entry(cfg, policy_dir), cfg)


def _refuse_other_policy(cfg: RunConfig, policy_dir: Path) -> None:
    summary = policy_dir / "summary.json"
    if cfg.overwrite or not summary.exists() or cfg.ckpt_path is not None:
        return
    other = json.loads(summary.read_text()).get("run_dir", "?")
    raise FileExistsError(f"run_name={cfg.run_name or policy_dir.name}: {policy_dir} already holds the policy of run "
                          f"{other}; choose another run_name or pass overwrite=true")


def _lock_entry(cfg: RunConfig, policy_dir: Path) -> int:
    """The fd of ``policy_dir``'s lock file, exclusively locked and holding this process id; a FileExistsError
    naming the holder's process when another one has it."""
    lock = policy_dir.with_name(f".{policy_dir.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode().strip() or "?"
        os.close(fd)
        raise FileExistsError(f"run_name={cfg.run_name or policy_dir.name}: another training (process {holder}) is "
                              f"writing {policy_dir} now ({lock} is locked); wait for it to end or choose another "
                              "run_name") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def fit_policy(cfg: RunConfig, task: ExecutionTask, model, tokenizer, out_dir: Path, t0: float,
               extra_callbacks: list | None = None) -> dict:
    """The Lightning fit of ``model`` on ``task``, then the registry entry (rank 0, finished runs only)."""
    model.train()
    task = task.rendered(tokenizer)
    if cfg.sequential.multi_turn:
        offline = sequential_sft_batches(cfg, task, tokenizer)
        return _fit(cfg, task, model, tokenizer, out_dir, t0, extra_callbacks, offline, None)
    pairs = preference_pairs(task, Split.TRAIN, cfg.algo.label_offsets_bps, cfg.algo.label_tie_bps)
    if cfg.algo.label_teacher is not None:
        from hyperdapo.rl.ppo import teacher_offsets

        with timed(log, f"SFT labels from the teacher ({cfg.algo.label_teacher})"):
            pairs = with_teacher_labels(task, pairs, teacher_offsets(task, cfg.algo.label_teacher, cfg.algo.ppo,
                                                                     cfg.seed, pairs["index"].to_numpy(),
                                                                     compact_z_features(cfg.prompt)))
    return _fit(cfg, task, model, tokenizer, out_dir, t0, extra_callbacks,
                OfflineBatches(task, pairs, cfg.algo.sft_batch_size, cfg.seed), pairs)


def sequential_sft_batches(cfg: RunConfig, task: ExecutionTask, tokenizer) -> TurnBatches:
    """The multi-turn policy's SFT data: the answers of the sequential baseline best on the training split
    (:func:`~hyperdapo.evaluation.sequential_metrics.sft_teacher`) at every step of the training episodes."""
    if cfg.algo.name is AlgoName.DPO:
        raise ValueError("sequential.multi_turn=true trains with algo=sft, dapo or grpo; DPO has no multi-turn pairs")
    baselines = sequential_baselines(cfg.evaluate.baselines)
    with timed(log, "multi-turn SFT target (the sequential baseline best on the training split)"):
        name, teacher, means = sft_teacher(task, baselines, cfg.sequential)
        log.info("multi-turn SFT target: %s (training mean IS, bps: %s)", name,
                 ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
        examples = turn_dataset(task, task.split_index(Split.TRAIN), teacher, cfg.sequential)
    return TurnBatches(examples, tokenizer, cfg.algo.sft_batch_size, cfg.seed)


def _fit(cfg: RunConfig, task: ExecutionTask, model, tokenizer, out_dir: Path, t0: float, extra_callbacks,
         offline, pairs) -> dict:
    total_opt_steps = optimizer_steps(cfg.algo, cfg.trainer.max_steps)
    module = PolicyModule(model, tokenizer, task, cfg.algo, cfg.optim, total_opt_steps, cfg.seed, offline=offline,
                          samples_every_n_steps=cfg.logger.samples_every_n_steps,
                          sequential=cfg.sequential if cfg.sequential.multi_turn else None)
    data = ExecutionDataModule(task, cfg.trainer.max_steps, cfg.trainer.val_decisions, cfg.decisions)
    a = cfg.algo
    tags = [f"asset:{cfg.asset.name}", f"algo:{a.name.value}", f"eps:{a.eps_low}/{a.eps_high}",
            f"dynamic_sampling:{a.dynamic_sampling}", f"loss_agg:{a.loss_agg.value}",
            f"overlong_shaping:{a.overlong_shaping}", f"reward:{cfg.reward.name.value}"]
    ckpt_path = resolve_checkpoint(cfg.ckpt_path, out_dir)
    resume_step = checkpoint_step(ckpt_path) if ckpt_path else None
    if resume_step is not None and resume_step >= cfg.trainer.max_steps:
        raise ValueError(f"ckpt_path={cfg.ckpt_path}: {ckpt_path} is at training step {resume_step}, the run's end "
                         f"(trainer.max_steps={cfg.trainer.max_steps}); raise trainer.max_steps to train on")
    stop_at = min(cfg.trainer.max_steps, cfg.trainer.stop_after_steps or cfg.trainer.max_steps)
    preemption = StopOnSignal(cfg.trainer.max_steps)  # after StopAfter: it also handles StopAfter's early stop
    warmup = cfg.algo.sft_warmup_steps if cfg.algo.name in (AlgoName.DAPO, AlgoName.GRPO) else 0
    best = BestValidation(out_dir / "checkpoints", min_step=warmup, resume=ckpt_path is not None)
    trainer = L.Trainer(  # training steps are counted by StopAfter; Lightning's max_steps would count optimiser steps
        max_steps=-1, max_epochs=-1, accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes, strategy=cfg.trainer.strategy, precision=cfg.trainer.precision,
        logger=make_loggers(cfg, out_dir, tags, resume_step), check_val_every_n_epoch=None,
        callbacks=[StepCheckpoints(out_dir / "checkpoints", cfg.trainer.ckpt_every_n_steps), StopAfter(stop_at),
                   best, preemption, StepProgressBar(cfg.trainer.max_steps, cfg.algo.name.value),
                   *(extra_callbacks or [])],
        plugins=[AtomicCheckpointIO()], enable_checkpointing=False,
        val_check_interval=cfg.trainer.val_every_n_steps, log_every_n_steps=cfg.trainer.log_every_n_steps,
        num_sanity_val_steps=0, enable_progress_bar=True, default_root_dir=str(out_dir), deterministic=False,
    )
    t_fit = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    if cfg.logger.name == "wandb":  # close the run, so that every job of a multirun logs its own
        import wandb

        wandb.finish()
    n_train, n_total, share = trainable_parameters(model)
    summary = {
        "asset": cfg.asset.name, "algo": cfg.algo.name.value, "model": cfg.model.name,
        "train_seconds": time.perf_counter() - t0, "fit_seconds": time.perf_counter() - t_fit,
        "steps": int(module.train_batches),
        "optimizer_steps": int(trainer.global_step),
        "trainable_params": n_train, "total_params": n_total, "trainable_share": share,
        "final": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "run_dir": str(out_dir),
        "stopped_by": preemption.stopped_by,  # a signal's name: interrupted, checkpointed (entry.py requeues)
    }
    if trainer.is_global_zero and module.train_batches >= cfg.trainer.max_steps:  # finished, not interrupted
        policy_dir = policy_dir_of(cfg, out_dir)
        check_registry_entry(cfg, policy_dir)  # another run may have taken the name while this one trained
        summary["registered"] = {"checkpoint": "last", "step": int(module.train_batches)}
        if cfg.trainer.register == "best" and best.best is not None:
            load_best(model, best.best)
            summary["registered"] = {"checkpoint": "best", "step": best.best["step"], MONITOR: best.best["score"]}
        policy_dir = save_policy(model, tokenizer, policy_dir)
        summary["policy_dir"] = str(policy_dir)
        if pairs is not None:  # the SFT / DPO data of this run (one-shot)
            save_table(pairs, out_dir / "datasets" / "preferences_train.parquet")
        config_yaml = OmegaConf.to_yaml(OmegaConf.structured(cfg))
        for d in (out_dir, policy_dir):
            write_text_atomic(d / "config.yaml", config_yaml)
            write_text_atomic(d / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary

