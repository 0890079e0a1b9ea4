"""Micro-batching: concurrent requests for one policy become one generate call.

A worker task takes the first queued item, then keeps collecting until the batch holds ``max_batch`` items or
``max_wait_ms`` have passed since the first (no wait when the previous batch held one item and nothing else is
queued: a lone client is not delayed), and runs the batch function in a thread (the event loop keeps
accepting requests meanwhile; the next batch forms while this one generates). One worker per policy, so one
generate call per policy at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(self, fn: Callable[[list[T]], Sequence[R]], max_batch: int, max_wait_ms: float,
                 on_batch: Callable[[int], None] | None = None):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch={max_batch} must be >= 1 and max_wait_ms={max_wait_ms} >= 0")
        self.fn, self.max_batch, self.max_wait_s, self.on_batch = fn, max_batch, max_wait_ms / 1000, on_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self._last_size = 0  # items of the previous batch

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; queued items fail with CancelledError."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait()[1].cancel()

    async def submit(self, item: T) -> R:
        """The result of ``item``, computed in the next batch."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() must run before submit()")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _next_batch(self) -> list[tuple[T, asyncio.Future]]:
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        alone = self._last_size <= 1 and self._queue.empty()  # a lone client pays no gathering wait
        deadline = loop.time() + (0.0 if alone else self.max_wait_s)
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = [(item, fut) for item, fut in await self._next_batch() if not fut.cancelled()]
            if not batch:
                continue
            self._last_size = len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                results = await asyncio.to_thread(self.fn, [item for item, _ in batch])
            except Exception as exc:  # every waiting request gets the error (a 500), the worker goes on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
