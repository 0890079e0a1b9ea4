"""Tardis.dev downloads through the official client (tardis-dev 5.x ``download_datasets``), time-bounded.

- The API key comes from the environment variable ``TARDIS_API_KEY`` only; it is never a config field, so it
  never reaches logs, reprs or saved configs.
- Without a key Tardis serves only the first day of each month: a request for other days fails here, before
  any network call, with a message that says so.
- The client retries a failing download for about 48 minutes. So, when any file is missing, the endpoint is
  first probed (one HTTP HEAD, any HTTP status counts as reachable, bounded by ``probe_timeout_s``): with no
  network, DNS, a refused connection or a silent host the download fails within that bound, naming the URL.
  After that the whole download is bounded by ``max_total_s`` (asyncio cancellation of the client's
  coroutine) and fails with a message naming the endpoint, the elapsed time and what to check.
- Files already present are skipped (the client's ``skip_if_exists``; nothing present -> no probe either); a
  progress bar counts files on a terminal and is off when stderr is not a TTY (no redraws in a log file).
- ``to_date`` is exclusive (Tardis semantics): 2024-01-01 .. 2024-01-02 is one day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tardis_dev.download_datasets import default_file_name, download_datasets_async
from tqdm import tqdm

from hyperdapo.data.config import TardisConfig

log = logging.getLogger(__name__)
KEY_ENV = "TARDIS_API_KEY"


def expected_paths(cfg: TardisConfig) -> list[Path]:
    """The files the download produces (Tardis default names)."""
    root = Path(cfg.download_dir)
    return [root / default_file_name(cfg.exchange, t, dt.datetime.combine(d, dt.time()), s.upper(), "csv")
            for s in cfg.symbols for t in cfg.data_types for d in cfg.days()]


def download_tardis(cfg: TardisConfig) -> list[Path]:
    """Download (or find) every file of ``cfg``; returns their paths. Raises ConnectionError when the endpoint is
    unreachable, the download fails or it exceeds ``max_total_s``."""
    paths = expected_paths(cfg)
    missing = [p for p in paths if not p.exists()]
    if not missing:  # everything on disk: no key, no network
        log.info("tardis: all %d file(s) present in %s", len(paths), cfg.download_dir)
        return paths
    present = len(paths) - len(missing)
    api_key = os.environ.get(KEY_ENV, "")
    if not api_key:
        paid = [p for p in missing if not re.search(r"_\d{4}-\d{2}-01_", p.name)]  # free: the 1st of a month
        if paid:
            raise ValueError(
                f"${KEY_ENV} is not set: without an API key Tardis.dev serves only the first day of each month, and "
                f"{len(paid)} file(s) still needed are not on disk, e.g. {[str(p) for p in paid[:3]]}. Set "
                f"{KEY_ENV}, put those files there, or ask for the 1st only."
            )
    _require_reachable(cfg)
    Path(cfg.download_dir).mkdir(parents=True, exist_ok=True)
    log.info("tardis: %d file(s) wanted, %d already present (skipped), endpoint %s", len(paths), present, cfg.endpoint)
    t0 = time.monotonic()
    try:
        asyncio.run(_download_with_progress(cfg, api_key, paths))
    except TimeoutError:
        raise ConnectionError(
            f"Tardis.dev download from {cfg.endpoint} did not finish within data.tardis.max_total_s="
            f"{cfg.max_total_s:g} s (gave up after {time.monotonic() - t0:.1f} s; "
            f"{sum(p.exists() for p in paths)} of {len(paths)} files present). Check the network, "
            f"${KEY_ENV} and the dates, or raise max_total_s."
        ) from None
    except Exception as exc:  # the client's own errors (HTTP 401/404, ...), without the key
        raise ConnectionError(f"Tardis.dev download from {cfg.endpoint} failed: {type(exc).__name__}: "
                           f"{str(exc).replace(api_key, '***') if api_key else exc}") from None
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ConnectionError(f"Tardis.dev download finished but {len(missing)} file(s) are missing, e.g. {missing[0]}")
    log.info("tardis: %d downloaded, %d skipped in %.1f s", len(paths) - present, present, time.monotonic() - t0)
    return paths


def probe_endpoint(url: str, timeout_s: float) -> str | None:
    """Why ``url`` cannot be reached, or None if it answers an HTTP HEAD with any status within ``timeout_s``
    seconds. DNS, connect and the answer together are bounded by ``timeout_s`` (the probe runs in a daemon
    thread, so a hung name lookup cannot hold the caller)."""
    outcome: list[str | None] = []

    def head() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
            outcome.append(None)
        except urllib.error.HTTPError:  # 4xx / 5xx: the host is there
            outcome.append(None)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            outcome.append(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")

    worker = threading.Thread(target=head, name="tardis-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return outcome[0] if outcome else f"no answer within {timeout_s:g} s"


def _require_reachable(cfg: TardisConfig) -> None:
    """Raise ConnectionError naming the endpoint when :func:`probe_endpoint` says it cannot be reached."""
    why = probe_endpoint(cfg.endpoint, cfg.probe_timeout_s)
    if why is not None:
        raise ConnectionError(
            f"Tardis.dev download from {cfg.endpoint} failed: the endpoint is unreachable ({why}; probed for at "
            f"most data.tardis.probe_timeout_s={cfg.probe_timeout_s:g} s). Check the network (and any proxy) "
            f"or data.tardis.endpoint."
        )


async def _download_with_progress(cfg: TardisConfig, api_key: str, paths: list[Path]) -> None:
    job = asyncio.create_task(download_datasets_async(
        exchange=cfg.exchange, data_types=list(cfg.data_types), symbols=[s.upper() for s in cfg.symbols],
        from_date=cfg.from_date, to_date=cfg.to_date, api_key=api_key, download_dir=cfg.download_dir,
        endpoint=cfg.endpoint, timeout=int(max(1, cfg.max_total_s)), concurrency=cfg.concurrency,
        skip_if_exists=True,
    ))
    # disable=None: no bar when stderr is not a terminal (a log file would get a redraw every 0.2 s)
    with tqdm(total=len(paths), desc="tardis files", unit="file", disable=None) as bar:
        deadline = time.monotonic() + cfg.max_total_s
        while not job.done():
            bar.n = sum(p.exists() for p in paths)
            bar.refresh()
            if time.monotonic() > deadline:
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
                raise TimeoutError
            await asyncio.wait({job}, timeout=0.2)
        bar.n = sum(p.exists() for p in paths)
        bar.refresh()
    job.result()
