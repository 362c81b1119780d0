"""Interpolated iteration costs: anchor grid, exactness on anchors, closeness to simulated costs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.serving import IterationCostModel, ServingConfig, replay
from mixpe_sys.serving.interpolation import AnchorGrid
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.workload.requests import LogNormalTokens, synthetic_requests

@settings(max_examples=200, deadline=None)
@given(exact=st.integers(1, 128), per_octave=st.integers(1, 8), value=st.integers(1, 200_000))
def test_anchor_grid_brackets(exact, per_octave, value):
    grid = AnchorGrid(exact, per_octave)
    lo, hi, w = grid.bracket(value)
    assert lo <= value <= hi and 0.0 <= w < 1.0
    assert (lo == hi) == (value <= exact or value in grid.anchors)
    if value > exact:
        assert lo % exact == 0 and hi % exact == 0 and hi <= 2 * lo
    corners = grid.corners((value, value + 3))
    assert math.isclose(sum(cw for _, cw in corners), 1.0)


def test_exact_below_threshold_and_on_anchors(tiny, design, cache):
    exact = IterationCostModel(tiny, design, quant=design.native_quant, cache=cache)
    interp = IterationCostModel(tiny, design, quant=design.native_quant, cache=cache,
                                config=ServingConfig(cost_model="interpolated", exact_tokens=16))
    for t in (1, 7, 16, 32, 64, 128):  # <= 16, or on the grid (16 x powers of 2)
        assert interp.token_cost(t) == exact.token_cost(t)
    for q, kv in ((1, 5), (1, 64), (16, 128), (32, 32)):
        assert interp.sequence_cost(q, kv) == exact.sequence_cost(q, kv)
    assert interp.head_cost(5) == exact.head_cost(5)


def test_interpolated_costs_are_close_to_simulated(tiny, design, cache):
    """The tiny model's ops are latency-dominated and the mapper's pick varies between nearby sizes, so only
    gross errors are caught here; bench_replay.py measures the error on Llama-2-7B (about 1%)."""
    exact = IterationCostModel(tiny, design, quant=design.native_quant, cache=cache)
    interp = IterationCostModel(tiny, design, quant=design.native_quant, cache=cache,
                                config=ServingConfig(cost_model="interpolated", exact_tokens=16))
    for t in (17, 50, 101, 333, 777):
        assert interp.token_cost(t).time_ns == pytest.approx(exact.token_cost(t).time_ns, rel=0.25)
    for q, kv in ((1, 77), (1, 1000), (40, 40), (300, 300), (33, 250), (100, 900)):
        assert interp.sequence_cost(q, kv).time_ns == pytest.approx(exact.sequence_cost(q, kv).time_ns, rel=0.25)


@pytest.mark.slow
def test_interpolated_replay_simulates_fewer_ops_and_agrees(tiny, design):
    trace = synthetic_requests(40, rate_per_s=3000, seed=5,
                               prompt_tokens=LogNormalTokens(mean_tokens=300, sigma=0.8, max_tokens=1500),
                               output_tokens=LogNormalTokens(mean_tokens=20, sigma=0.8, max_tokens=100))
    ex = replay(trace, tiny, design, cache=CostCache(design), progress=False)
    ip = replay(trace, tiny, design, cache=CostCache(design), progress=False, cost_model="interpolated",
                exact_tokens=16)
    assert ip.summary["simulated_ops"] < ex.summary["simulated_ops"]
    assert ip.summary["completed"] == ex.summary["completed"] == len(trace)
    for key in ("ttft_mean_s", "tpot_mean_s", "e2e_mean_s", "busy_s"):
        assert ip.summary[key] == pytest.approx(ex.summary[key], rel=0.1)
