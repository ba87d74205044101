"""Flat combining (service.combining): requests that queue while one is served are served
together, each gets its own answer, and one request's failure is its own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from service.combining import Batches, Combiner


class _Gate:
    """A serve function whose first batch waits for :attr:`release`, recording every batch
    it is given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()

    def __call__(self, items: Sequence[str]) -> Mapping[int, str]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            assert self.release.wait(10)
        return {i: item.upper() for i, item in enumerate(items)}


@dataclass
class _Started:
    threads: list[threading.Thread]
    outcomes: dict[str, object]


def _submit_all(
    combiner: Combiner[str, str],
    serve: Callable[[Sequence[str]], Mapping[int, str]],
    items: list[str],
    shared: Callable[[BaseException], bool] = lambda error: False,
) -> _Started:
    """Submit ``items[0]`` first, the rest in order once it is being served."""
    outcomes: dict[str, object] = {}

    def submit(item: str) -> None:
        try:
            outcomes[item] = combiner.submit(item, serve, shared)
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcomes[item] = error

    threads = [threading.Thread(target=submit, args=(items[0],))]
    threads[0].start()
    _wait_for(lambda: combiner._serving)
    for queued, item in enumerate(items[1:], 1):  # one at a time: the queue's order is known
        thread = threading.Thread(target=submit, args=(item,))
        thread.start()
        threads.append(thread)
        _wait_for(lambda queued=queued: len(combiner._queue) == queued)  # type: ignore[misc]
    return _Started(threads, outcomes)


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _finish(started: _Started, gate: _Gate) -> dict[str, object]:
    gate.release.set()
    for thread in started.threads:
        thread.join(10)
        assert not thread.is_alive()
    return started.outcomes


def test_a_lone_request_is_served_alone() -> None:
    combiner: Combiner[str, str] = Combiner()
    assert combiner.submit("a", lambda items: {0: items[0].upper()}) == "A"
    assert (combiner.batches, combiner.answered) == (1, 1)


def test_requests_that_queue_while_one_is_served_are_served_together() -> None:
    combiner: Combiner[str, str] = Combiner()
    gate = _Gate()
    outcomes = _finish(_submit_all(combiner, gate, ["a", "b", "c", "d", "e", "f"]), gate)
    assert outcomes == {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E", "f": "F"}
    assert gate.batches == [["a"], ["b", "c", "d", "e", "f"]]
    assert (combiner.batches, combiner.answered) == (2, 6)


def test_a_failing_batch_fails_its_first_request_only() -> None:
    combiner: Combiner[str, str] = Combiner()
    gate = _Gate()

    def serve(items: Sequence[str]) -> Mapping[int, str]:
        if items[0] == "bad":
            raise ValueError("bad request")
        return gate(items)

    outcomes = _finish(_submit_all(combiner, serve, ["a", "bad", "b", "c"]), gate)
    assert isinstance(outcomes["bad"], ValueError)
    assert {k: v for k, v in outcomes.items() if k != "bad"} == {"a": "A", "b": "B", "c": "C"}


def test_an_error_every_request_would_meet_fails_the_whole_batch_at_once() -> None:
    """The database down: the queued requests raise with the first, rather than each
    waiting for a turn of its own to fail."""
    combiner: Combiner[str, str] = Combiner()
    gate = _Gate()
    calls: list[list[str]] = []

    def serve(items: Sequence[str]) -> Mapping[int, str]:
        calls.append(list(items))
        gate(items)
        raise ConnectionError("database down")

    shared = _submit_all(combiner, serve, ["a", "b", "c"], shared=lambda e: isinstance(e, ConnectionError))
    outcomes = _finish(shared, gate)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes.values()), outcomes
    assert calls == [["a"], ["b", "c"]]


def test_requests_left_unanswered_are_served_by_later_batches_in_order() -> None:
    combiner: Combiner[str, str] = Combiner()
    batches: list[list[str]] = []
    release = threading.Event()

    def one_at_a_time(items: Sequence[str]) -> Mapping[int, str]:
        batches.append(list(items))
        if len(batches) == 1:
            assert release.wait(10)
        return {0: items[0].upper()}

    gate = _Gate()
    gate.release = release
    outcomes = _finish(_submit_all(combiner, one_at_a_time, ["a", "b", "c", "d"]), gate)
    assert outcomes == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert batches == [["a"], ["b", "c", "d"], ["c", "d"], ["d"]]  # the oldest first, each turn


def test_a_batch_that_leaves_its_first_request_unanswered_fails_it() -> None:
    combiner: Combiner[str, str] = Combiner()
    with pytest.raises(RuntimeError, match="unanswered"):
        combiner.submit("a", lambda items: {})
    assert combiner.submit("b", lambda items: {0: "B"}) == "B"  # and the combiner still serves


def test_many_threads_each_get_their_own_answer() -> None:
    combiner: Combiner[int, int] = Combiner(limit=8)
    sizes: list[int] = []

    def serve(items: Sequence[int]) -> Mapping[int, int]:
        sizes.append(len(items))
        time.sleep(0.0005)  # a transaction's worth of waiting, so requests queue
        return {i: item * 2 for i, item in enumerate(items)}

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda n: combiner.submit(n, serve), range(2000)))
    assert results == [n * 2 for n in range(2000)]
    assert sum(sizes) == 2000 and max(sizes) <= 8
    assert len(sizes) < 2000  # some were served together


# Batches: the same idea on an event loop, for heartbeats.


class _AsyncGate:
    """An async serve function whose first batch waits for :attr:`release`."""

    def __init__(self, fail_first: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_first = fail_first

    async def __call__(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            await self.release.wait()
            if self.fail_first:
                raise OSError("the database went away")
        return [item.upper() for item in items]


async def _queued(batches: Batches[str, str], serve: _AsyncGate, items: list[str]) -> list[asyncio.Task[str]]:
    """Submit ``items[0]``, then the rest while it is being served."""
    tasks = [asyncio.create_task(batches.submit(items[0], serve))]
    while not serve.batches:
        await asyncio.sleep(0)
    tasks += [asyncio.create_task(batches.submit(item, serve)) for item in items[1:]]
    while len(batches._waiting) < len(items) - 1:
        await asyncio.sleep(0)
    return tasks


def test_batches_serve_what_arrives_meanwhile_together_each_with_its_own_result() -> None:
    async def scenario() -> None:
        batches: Batches[str, str] = Batches()
        serve = _AsyncGate()
        tasks = await _queued(batches, serve, ["a", "b", "c", "d"])
        serve.release.set()
        assert await asyncio.gather(*tasks) == ["A", "B", "C", "D"]
        assert serve.batches == [["a"], ["b", "c", "d"]]
        assert (batches.batches, batches.answered) == (2, 4)
        assert await batches.submit("e", serve) == "E"  # alone: served at once, in a batch of one
        assert serve.batches[-1] == ["e"]

    asyncio.run(scenario())


def test_batches_take_at_most_limit_items_at_a_time() -> None:
    async def scenario() -> None:
        batches: Batches[str, str] = Batches(limit=2)
        serve = _AsyncGate()
        tasks = await _queued(batches, serve, ["a", "b", "c", "d", "e"])
        serve.release.set()
        await asyncio.gather(*tasks)
        assert serve.batches == [["a"], ["b", "c"], ["d", "e"]]

    asyncio.run(scenario())


def test_a_failing_batch_fails_each_of_its_requests_and_not_the_next_batch() -> None:
    async def scenario() -> None:
        batches: Batches[str, str] = Batches(limit=2)
        serve = _AsyncGate(fail_first=True)
        first = asyncio.create_task(batches.submit("a", serve))
        while not serve.batches:
            await asyncio.sleep(0)
        serve.release.set()
        with pytest.raises(OSError, match="went away"):
            await first
        assert (batches.batches, batches.answered) == (0, 0)
        assert await batches.submit("b", serve) == "B"

    asyncio.run(scenario())


def test_a_batch_answered_with_the_wrong_count_fails_rather_than_misanswering() -> None:
    async def short(items: Sequence[str]) -> list[str]:
        return list(items)[:-1]

    async def scenario() -> None:
        batches: Batches[str, str] = Batches()
        with pytest.raises(RuntimeError, match="batch of 1 was answered with 0"):
            await batches.submit("a", short)

    asyncio.run(scenario())


def test_a_cancelled_request_stops_nobody_elses() -> None:
    async def scenario() -> None:
        batches: Batches[str, str] = Batches()
        serve = _AsyncGate()
        first, second, third = await _queued(batches, serve, ["a", "b", "c"])
        first.cancel()  # its client went away while its batch was being served
        second.cancel()  # and this one's while it waited
        serve.release.set()
        assert await third == "C"
        assert first.cancelled() and second.cancelled()
        assert await batches.submit("d", serve) == "D"

    asyncio.run(scenario())


def test_batches_work_on_each_event_loop_they_are_used_on() -> None:
    batches: Batches[str, str] = Batches()

    async def once(item: str) -> str:
        serve = _AsyncGate()
        serve.release.set()
        return await batches.submit(item, serve)

    assert asyncio.run(once("a")) == "A"
    assert asyncio.run(once("b")) == "B"  # a new loop: nothing of the old one is waited for
