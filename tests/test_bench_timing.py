"""refimpl.bench_timing: the interleaved rounds of `refimpl bench` (docs/performance.md). No peer needed."""

import time


def test_rounds_interleave_the_sides_and_pair_their_ratios():
    """Every side runs once per round, in turn (so a drift of the machine's speed moves both sides of a ratio
    alike), at least ``repeats`` rounds; a fast side goes on for ``min_seconds`` of its own, with the
    reference in every round; the ratio is the median of the rounds' ratios."""
    from refimpl.bench_timing import paired_ratio, rounds

    order = []
    times, results = rounds({"a": lambda: order.append("a") or 1, "b": lambda: order.append("b") or 2}, 4, 60.0)
    assert order == ["a", "b"] * 4
    assert results == {"a": 1, "b": 2} and [len(v) for v in times.values()] == [4, 4]

    def slow():
        order.append("s")
        time.sleep(0.02)

    order.clear()
    times, _ = rounds({"a": lambda: order.append("a"), "s": slow, "f": lambda: order.append("f")}, 2, 60.0,
        min_seconds=0.03)  # fmt: skip
    # the slow side stops after two rounds (0.04 s of its own); the others go on to max_runs
    assert order[:6] == ["a", "s", "f", "a", "s", "f"] and "s" not in order[6:]
    assert [len(times[k]) for k in "asf"] == [25, 2, 25] and order[6:8] == ["a", "f"]
    # a drift that slows round 3 tenfold for both sides leaves the paired ratio at 3
    assert paired_ratio([3.0, 3.0, 30.0], [1.0, 1.0, 10.0]) == 3.0
    assert paired_ratio([3.0, 3.0, 30.0], [1.0, 1.0, 10.0, 5.0], scale=2.0) == 6.0
    # max_seconds stops after one round at least; max_runs caps the rounds
    assert len(rounds({"a": lambda: None}, 5, -1.0)[0]["a"]) == 1
    assert len(rounds({"a": lambda: None}, 1, 60.0, min_seconds=60.0, max_runs=3)[0]["a"]) == 3
