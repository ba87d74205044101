"""Flat combining: requests that queue for the same serial resource are served together.

A study's grants take turns on its lock (:mod:`service.study_locks`), so with many workers
most grant requests of an API process wait for that lock. Each turn costs a transaction:
the lock, the running studies, the round's state, the commit, and for every statement a
round trip after which the request's thread waits for the GIL again. With a
:class:`Combiner`, a request that finds another being served joins a queue; the thread
that serves next takes the whole queue and answers as many of them as it can in one
transaction (:func:`service.grants.grant_lease`). The others are served by later turns,
one of which each of them may take itself: nobody waits for a thread that has stopped
serving.

The serving thread is one of the requests' own threads (no extra thread to stop or to
die): the first one that finds nobody serving.

Heartbeats are combined one step earlier, on the event loop (:class:`Batches`): a fleet
sends hundreds a second, each one statement, and each would otherwise cost a trip to the
thread pool, a pooled connection's ping, a transaction and the GIL regained after every
round trip, several times what its SQL costs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Slot(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class Combiner(Generic[T, R]):
    """Serves queued requests in batches of at most ``limit``, one batch at a time.

    ``serve(items)`` answers a batch: it returns ``{position: result}`` for the items it
    answered, and must answer the first (a batch's first item is the oldest request, so
    each turn answers at least the oldest). Items it left unanswered go back to the front
    of the queue. If ``serve`` raises, the first item's request raises that error and the
    rest go back to the queue, so one failing request cannot fail its neighbours; unless
    ``shared(error)`` says every request of the batch would meet it (the database is
    down): then they all raise it, rather than each waiting for its own turn to fail.
    """

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._changed = threading.Condition()
        self._queue: list[_Slot[T, R]] = []
        self._serving = False
        self.batches = 0  # turns taken, and requests answered in them (metrics)
        self.answered = 0

    def submit(
        self,
        item: T,
        serve: Callable[[Sequence[T]], Mapping[int, R]],
        shared: Callable[[BaseException], bool] = lambda error: False,
    ) -> R:
        """``item``'s result, served in this thread's batch or in another thread's."""
        slot: _Slot[T, R] = _Slot(item)
        with self._changed:
            self._queue.append(slot)
        while True:
            with self._changed:
                while self._serving and not slot.done:
                    self._changed.wait()
                if slot.done:
                    break
                self._serving = True
                batch = self._queue[: self._limit]
                del self._queue[: len(batch)]
            self._serve(batch, serve, shared)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # R, set with done

    def _serve(
        self,
        batch: list[_Slot[T, R]],
        serve: Callable[[Sequence[T]], Mapping[int, R]],
        shared: Callable[[BaseException], bool],
    ) -> None:
        answered: Mapping[int, R] = {}
        error: BaseException | None = None
        try:
            answered = serve([slot.item for slot in batch])
            if 0 not in answered:
                error = RuntimeError("a combined batch left its first request unanswered")
        except BaseException as raised:  # handed to the request it belongs to, below
            error = raised
        with self._changed:
            self.batches += 1
            self.answered += len(answered)
            for position, slot in enumerate(batch):
                if position in answered:
                    slot.result, slot.done = answered[position], True
            if error is not None:
                for slot in batch if shared(error) else batch[:1]:
                    slot.error, slot.done = error, True
            self._queue[:0] = [slot for slot in batch if not slot.done]
            self._serving = False
            self._changed.notify_all()


class Batches(Generic[T, R]):
    """Requests of an event loop answered in batches of at most ``limit``, one batch at a
    time: what arrives while a batch is served waits for the next (group commit). Alone, a
    request is served at once; under load, batches grow with it.

    ``serve(items)`` answers a batch with one result per item, in order. If it raises,
    every request of the batch raises that error (a batch is one statement: what fails it
    fails all). The serving runs in a task of its own, so a request that is cancelled (its
    client went away) stops nobody else's.
    """

    def __init__(self, limit: int = 512) -> None:
        self._limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._serving: asyncio.Task[None] | None = None
        self.batches = 0  # batches served, and requests answered in them (metrics)
        self.answered = 0

    async def submit(self, item: T, serve: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> R:
        """``item``'s result, from the batch it lands in."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (a test's second client): what the old one queued went with it.
            self._loop, self._waiting, self._serving = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._serving is None:
            self._serving = loop.create_task(self._serve(serve))
        return await future

    async def _serve(self, serve: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._limit]
                del self._waiting[: len(batch)]
                try:
                    results = await serve([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} was answered with {len(results)}")
                except Exception as error:  # every request of the batch raises it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    batch = []
                    continue
                self.batches += 1
                self.answered += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # not cancelled meanwhile
                        future.set_result(result)
                batch = []
        finally:
            for _, future in batch:  # this task was cancelled mid-batch (the loop is closing)
                future.cancel()
            self._serving = None
