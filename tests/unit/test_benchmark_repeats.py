"""The service-overhead benchmark's repeats: interleaved, the order swapped, paired ratios."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.service_overhead import _interleaved


def _recorder(
    rates: dict[str, list[float]], calls: list[tuple[str, dict[str, int]]]
) -> dict[str, Callable[..., float]]:
    """Measure functions that hand out the given rates in turn and record each call."""

    def side(name: str) -> Callable[..., float]:
        def measure(**setting: int) -> float:
            calls.append((name, setting))
            return rates[name].pop(0)

        return measure

    return {"raw": side("raw"), "hone": side("hone")}


def test_repeats_alternate_which_side_runs_first() -> None:
    calls: list[tuple[str, dict[str, int]]] = []
    _interleaved(_recorder({"raw": [1.0] * 4, "hone": [1.0] * 4}, calls), 4, workers=4, steps=20)
    assert [name for name, _ in calls] == ["raw", "hone", "hone", "raw", "raw", "hone", "hone", "raw"]
    assert all(setting == {"workers": 4, "steps": 20} for _, setting in calls)


def test_the_ratio_is_the_median_of_paired_ratios_not_a_ratio_of_medians() -> None:
    # The machine slows down over the repeats; each pair is measured at one speed.
    rates = {"raw": [10.0, 20.0, 40.0], "hone": [30.0, 40.0, 100.0]}
    row = _interleaved(_recorder(rates, []), 3, workers=1, steps=0)
    assert row["ratios"] == [3.0, 2.0, 2.5]
    assert row["ratio"] == 2.5
    assert (row["hone"], row["raw"]) == (40.0, 20.0)  # medians of each side, for the table
