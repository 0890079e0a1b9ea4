"""Latency and batched throughput of the decision service (``python -m hyperdapo.serve``) on the loopback.

    .venv/bin/python benchmarks/bench_serve.py [--policy DIR] [--requests 200] [--seconds 30] [--max-wait-ms 10]

Without ``--policy`` it first trains a tiny policy in-process (the default tiny model, 150 SFT steps on 4.8
synthetic hours, a few minutes on 2 cores; nothing is fetched). It starts the service as a subprocess on 127.0.0.1
(a free port, one torch thread, ``max_batch=32``, ``max_wait_ms=10``), sends feature rows of the synthetic market's
test split (varied prompts), then measures: one client sending requests one after another (latency p50 / p99 in
ms, throughput), and 32 concurrent clients (throughput). Each phase is bounded by ``--requests`` requests (x 32 for
the concurrent one) and ``--seconds``; the service is stopped at the end. Last line:
``RESULT decide_p50_ms=<a> decide_p99_ms=<b> batched_speedup_32=<throughput 32 clients / throughput 1 client>``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from hyperdapo.pipeline.config import compose_run_config
from hyperdapo.pipeline.train_run import build_task, run_training

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 32


def train_tiny(tmp: Path, steps: int) -> Path:
    cfg = compose_run_config([
        "algo=sft", f"trainer.max_steps={steps}", "run_name=bench-serve", "logger=none", "data.synthetic.n_days=0.2",
        "decisions.every_s=30", "data.raw_dir=benchmarks/.out/raw", "data.cache_dir=benchmarks/.out/cache",
        f"registry_dir={tmp}/models", "trainer.val_decisions=8", f"trainer.val_every_n_steps={steps}",
        f"trainer.ckpt_every_n_steps={steps}", "algo.sft_batch_size=16"])
    return Path(run_training(cfg, tmp / "run")["policy_dir"])


def request_bodies(n: int) -> list[dict]:
    """``n`` decide bodies from the synthetic market's test-split feature rows (NaN features left out)."""
    cfg = compose_run_config(["data.synthetic.n_days=0.2", "decisions.every_s=30", "data.raw_dir=benchmarks/.out/raw",
                              "data.cache_dir=benchmarks/.out/cache"])
    task = build_task(cfg)
    idx = task.split_index("test")
    bodies = []
    for k in range(n):
        i = int(idx[k % len(idx)])
        features = {name: float(v) for name, v in task.features[i].items()
                    if isinstance(v, float | int) and not isinstance(v, bool) and math.isfinite(v)}
        bodies.append({"asset": "BTC", "side": "buy" if task.decisions.side[i] > 0 else "sell",
                       "quantity": float(task.decisions.qty[i]), "objective": str(task.decisions.objective[i]),
                       "features": features})
    return bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the service did not answer /healthz within {timeout_s} s")


async def run_clients(url: str, bodies: list[dict], clients: int, per_client: int,
                      seconds: float) -> tuple[list, float]:
    """(latencies in ms, elapsed s) of ``clients`` concurrent clients, each sending up to ``per_client`` requests
    one after another, all stopping after ``seconds``."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client(c: int, http: httpx.AsyncClient) -> None:
        for k in range(per_client):
            if time.monotonic() > deadline:
                return
            t0 = time.perf_counter()
            r = await http.post(f"{url}/v1/decide", json=bodies[(c * per_client + k) % len(bodies)])
            r.raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        return latencies, time.perf_counter() - t0


def mean_batch_size(metrics_text: str) -> float:
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
              if line.startswith(("hyperdapo_batch_size_sum", "hyperdapo_batch_size_count"))}
    return values["hyperdapo_batch_size_sum"] / max(values["hyperdapo_batch_size_count"], 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", help="a registered policy directory (default: train a tiny one)")
    ap.add_argument("--train-steps", type=int, default=150)
    ap.add_argument("--requests", type=int, default=200, help="requests of the one-client phase; x 32 concurrent")
    ap.add_argument("--seconds", type=float, default=30.0, help="time limit of each phase, s")
    ap.add_argument("--max-wait-ms", type=float, default=10.0, help="the service's batch gathering window, ms")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(args.policy) if args.policy else train_tiny(Path(tmp), args.train_steps)
        bodies = request_bodies(512)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "hyperdapo.serve", f"policy={policy}", f"port={port}",
                                 "host=127.0.0.1", "device=cpu", "torch_threads=1", f"max_batch={CLIENTS}",
                                 f"max_wait_ms={args.max_wait_ms}"], cwd=REPO)
        try:
            wait_healthy(url, proc, 120.0)
            asyncio.run(run_clients(url, bodies, 1, 10, args.seconds))  # warm-up
            lat1, t1 = asyncio.run(run_clients(url, bodies, 1, args.requests, args.seconds))
            lat32, t32 = asyncio.run(run_clients(url, bodies, CLIENTS, args.requests, args.seconds))
            batch = mean_batch_size(httpx.get(f"{url}/metrics").text)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    thr1, thr32 = len(lat1) / t1, len(lat32) / t32
    p50, p99 = np.percentile(lat1, [50, 99])
    print(f"1 client: {len(lat1)} requests, {thr1:.1f} req/s, latency p50 {p50:.1f} ms p99 {p99:.1f} ms")
    print(f"{CLIENTS} clients: {len(lat32)} requests, {thr32:.1f} req/s, latency p50 "
          f"{statistics.median(lat32):.1f} ms; mean batch size over the run {batch:.1f}")
    print(f"RESULT decide_p50_ms={p50:.1f} decide_p99_ms={p99:.1f} batched_speedup_32={thr32 / thr1:.1f}")


if __name__ == "__main__":
    main()
