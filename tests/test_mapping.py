"""The GEMM mapper: its cost estimate against the simulation, how it spreads work over the tiles,
and the K-loop rotation of the tile steps."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys import MappingError, load_design, simulate_gemm
from mixpe_sys.hw.accelerator import plan_time_lower_bound_ns, plan_time_ns
from mixpe_sys.hw.config import Dataflow
from mixpe_sys.hw.tile_step import StepTimer
from mixpe_sys.mapping import block_counts, gemm as mapping
from mixpe_sys.mapping import layout
from mixpe_sys.mapping.gemm import GemmSpec, GemmTiling, LoopOrder, choose_tiling, plan_gemm
from mixpe_sys.workload.quant import NumberFormat

# the four decode GEMMs of Llama-2-7B as (n, k): o_proj (and q, k, v), ffn gate / up, ffn down, fused qkv
DECODE = ((4096, 4096), (11008, 4096), (4096, 11008), (12288, 4096))


@pytest.fixture(scope="module")
def a100():
    return load_design("a100-like")


def _hbm_fraction(r, design) -> float:
    reads, writes = r.spec.compulsory_bytes()
    return (reads + writes) / r.device_time_s / design.dram.bandwidth_bytes_per_s


@pytest.mark.parametrize("n, k", DECODE)
def test_decode_gemv_streams_at_the_sustained_bandwidth(a100, n, k):
    """Batch-1 decode GEMVs are cut so that enough tiles stream weights to keep the HBM busy: one
    tile alone (one load in flight, 64 B/clock into its weight buffer) reaches a few percent of it."""
    r = simulate_gemm(1, n, k, a100)
    fraction = _hbm_fraction(r, a100)
    # at most the sustained fraction of peak; at least 0.8 of peak: with a 0.9 sustained fraction the
    # latency of the first load and of the last store are all that is left
    assert 0.8 <= fraction <= a100.dram.bandwidth_efficiency
    assert sum(1 for steps in r.plan.steps if steps) >= 64


@pytest.mark.parametrize("n, k", DECODE)
def test_decode_time_is_flat_until_the_compute_roofline(a100, n, k):
    """Memory-bound decode GEMMs take about as long at batch 64 as at batch 1 (the weights dominate)."""
    one = simulate_gemm(1, n, k, a100)
    sixty_four = simulate_gemm(64, n, k, a100)
    assert sixty_four.roofline_bound == "memory"
    assert sixty_four.device_time_s <= 1.05 * one.device_time_s


@pytest.mark.parametrize("m, n, k", [(1, 4096, 4096), (1, 11008, 4096), (64, 4096, 11008), (128, 12288, 4096),
                                     (512, 4096, 4096)])
def test_estimate_agrees_with_the_simulation(a100, m, n, k):
    """The time the mapper estimates for its choice is what the simulator then measures, within 5 %."""
    r = simulate_gemm(m, n, k, a100)
    assert r.plan.tiling.estimated_time_s == pytest.approx(r.device_time_s, rel=0.05)


def test_medium_gemm_uses_the_tiles():
    """128 x 12288 x 12288 (measured on an A100 at 0.2003 ms with launch overhead) used to be cut into
    48 output blocks for 108 tiles; now it streams its 302 MB of weights at the sustained bandwidth."""
    d = load_design("a100-like")
    r = simulate_gemm(128, 12288, 12288, d)
    assert sum(1 for steps in r.plan.steps if steps) >= 96
    sustained = d.dram.bandwidth_bytes_per_s * d.dram.bandwidth_efficiency
    assert r.device_time_s <= 1.05 * (r.dram_read_bytes + r.dram_write_bytes) / sustained


def test_traffic_estimate_is_the_plans():
    """With a global buffer every activation tile is read from DRAM once, however many tiles use it."""
    for name, (m, n, k, batch) in [("a100-like", (128, 1000, 700, 1)), ("mixpe-w4a8", (37, 300, 640, 2)),
                                   ("mixpe-w4a16", (200, 96, 384, 3)), ("paper-int8", (70, 500, 300, 1))]:
        design = load_design(name)
        q = design.native_quant
        spec = GemmSpec(m=m, n=n, k=k, batch=batch, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                        activation_format=q.activation_format, group_size=q.group_size if q.quantized_weights else 0,
                        scale_bits=q.scale_bits, zero_bits=q.zero_bits)
        shared = design.global_buffer is not None
        for order in LoopOrder:
            for tm, tn, tk in [(32, 64, spec.k), (16, 32, 128), (64, 96, 256)]:
                tiling = GemmTiling(tm, tn, tk, order, Dataflow.OUTPUT_STATIONARY, 0.0)
                reads, writes = plan_gemm(spec, design, tiling).dram_bytes(shared)
                traffic = block_counts.dram_traffic(spec, design.num_tiles, order, tm, tn, tk, shared)[0]
                # equal up to the rounding of sub-byte tiles (INT4 weights) to whole bytes
                assert traffic == pytest.approx(reads + writes, rel=0.002, abs=8), (name, order, tm, tn, tk)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.integers(0, 500), st.integers(1, 40), st.integers(0, 39), st.integers(1, 30))
def test_periodic_count_matches_brute_force(lo, span, period, start, length):
    start %= period
    length = min(length, period - start)
    hi = lo + span
    assert block_counts.periodic_count(lo, hi, period, start, length) == \
        sum(1 for x in range(lo, hi) if start <= x % period < start + length)


def test_periodic_count_of_arrays_is_elementwise():
    """The counts also take integer arrays (the mapper counts every tile's share at once)."""
    import numpy as np
    lo, hi = np.arange(0, 60, 7), np.arange(0, 60, 7) + np.arange(9) * 5
    for period, start, length in [(1, 0, 1), (5, 4, 1), (12, 3, 9), (40, 0, 40)]:
        counts = block_counts.periodic_count(lo, hi, period, start, length)
        assert counts.tolist() == [sum(1 for x in range(a, b) if start <= x % period < start + length)
                                   for a, b in zip(lo.tolist(), hi.tolist())]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(LoopOrder)), st.integers(1, 5), st.integers(1, 6), st.integers(1, 6),
       st.integers(0, 200), st.integers(0, 60))
def test_edge_block_count_matches_the_enumeration(order, batch, nb_i, nb_j, lo, span):
    blocks = batch * nb_i * nb_j
    lo, hi = min(lo, blocks), min(lo + span, blocks)
    if order is LoopOrder.M_OUTER:
        enum = [(b, i, j) for b in range(batch) for i in range(nb_i) for j in range(nb_j)]
    else:
        enum = [(b, i, j) for b in range(batch) for j in range(nb_j) for i in range(nb_i)]
    part = enum[lo:hi]
    expected = (sum(i == nb_i - 1 for _, i, _ in part), sum(j == nb_j - 1 for _, _, j in part),
                sum(i == nb_i - 1 and j == nb_j - 1 for _, i, j in part))
    assert block_counts.edge_blocks(order, lo, hi, nb_i, nb_j) == expected


def test_k_loop_rotation():
    """Each tile starts its blocks' K loops at its own K slice and wraps around: every block still
    runs each K slice once, accumulation starts at position 0 and the output is stored after the last."""
    d = load_design("a100-like")
    spec = GemmSpec(m=64, n=4096, k=1000, weight_bits=16, activation_bits=16, output_bits=16,
                    activation_format=NumberFormat.FP)
    tiling = GemmTiling(64, 64, 128, LoopOrder.M_OUTER, Dataflow.OUTPUT_STATIONARY, 0.0)
    plan = plan_gemm(spec, d, tiling)
    nk = 8  # 7 slices of 128 and one of 104
    starts = set()
    for t, steps in enumerate(plan.steps):
        by_block = defaultdict(list)
        for s in steps:
            by_block[s.inst, s.i, s.j].append(s)
        for block in by_block.values():
            assert [s.kk for s in block] == list(range(nk))
            assert sorted(s.k_slice for s in block) == list(range(nk))
            assert [s.k for s in block] == [104 if s.k_slice == nk - 1 else 128 for s in block]
            assert [bool(s.store_bytes) for s in block] == [False] * (nk - 1) + [True]
            assert block[0].k_slice == layout.k_rotation(t, nk)
        if steps:
            starts.add(steps[0].k_slice)
    assert starts == set(range(nk))  # 64 tiles share the one row block: every slice is someone's first
    # a K slice's operands are the same tiles wherever the loop starts
    keys = {(s.a_key, s.a_addr) for _, s in plan.iter_steps() if s.a_key is not None}
    assert {a for a, _ in keys} == {(0, 0, kk) for kk in range(nk)}
    assert len(keys) == nk


def test_k_rotation_spreads_any_run_of_tiles():
    """Any run of consecutive tiles starts at nearly evenly spread K slices (golden-ratio sequence)."""
    for nk in (4, 8, 32, 96):
        for first in (0, 17, 50):
            for count in (nk // 2, nk, 2 * nk):
                starts = sorted(layout.k_rotation(t, nk) for t in range(first, first + count))
                gaps = [b - a for a, b in zip(starts, starts[1:])] + [starts[0] + nk - starts[-1]]
                assert max(gaps) <= 3 * nk / count + 1


def test_choose_tiling_is_memoised_and_pure(a100):
    spec = GemmSpec(m=16, n=4096, k=4096, weight_bits=16, activation_bits=16, output_bits=16,
                    activation_format=NumberFormat.FP)
    first = choose_tiling(spec, a100)
    assert choose_tiling(dataclasses.replace(spec), load_design("a100-like")) == first
    # a different design is mapped afresh
    slower = a100.replace(dram=a100.dram.replace(bandwidth_bytes_per_s=a100.dram.bandwidth_bytes_per_s / 8))
    assert choose_tiling(spec, slower).estimated_time_s > first.estimated_time_s


def test_a_tiling_on_some_of_the_tiles_leaves_the_others_idle():
    """``tiles=t``: the output blocks are shared over tiles 0 .. t-1 as on a design of t tiles."""
    d = load_design("mixpe-w4a8")  # 8 tiles
    spec = GemmSpec(m=100, n=300, k=256, weight_bits=4, activation_bits=8, output_bits=16)
    tiling = GemmTiling(32, 64, 128, LoopOrder.M_OUTER, Dataflow.OUTPUT_STATIONARY, 0.0, 3)
    plan = plan_gemm(spec, d, tiling)
    # 4 row blocks x 5 column blocks = 20 blocks: 6, 7 and 7 of them (x 2 K steps) on tiles 0, 1, 2
    assert [len(steps) for steps in plan.steps] == [12, 14, 14, 0, 0, 0, 0, 0]
    assert plan.steps[:3] == plan_gemm(spec, d.replace(num_tiles=3), tiling).steps
    with pytest.raises(MappingError, match="tiles"):
        plan_gemm(spec, d, dataclasses.replace(tiling, tiles=9))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["mixpe-w4a8", "mixpe-w4a16", "a100-like", "paper-int8", "fp16"]),
       st.integers(1, 400), st.integers(1, 900), st.integers(1, 900), st.sampled_from([0, 1, 2]))
def test_the_lower_bound_never_exceeds_the_simulation(name, m, n, k, halvings):
    """The bound the mapper prunes its shortlist with is a true lower bound of the simulated time."""
    d = load_design(name)
    r = simulate_gemm(m, n, k, d)
    tiling = dataclasses.replace(r.plan.tiling, tiles=max(1, d.num_tiles >> halvings))
    plan = plan_gemm(r.spec, d, tiling)
    assert plan_time_lower_bound_ns(plan, d) <= plan_time_ns(plan, d)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["mixpe-w4a8", "a100-like", "paper-int8", "fp16", "paper-mixpe-w4a16"]),
       st.integers(1, 300), st.integers(1, 700), st.integers(1, 700), st.integers(1, 3),
       st.sampled_from([1, 8, 32, 128]), st.sampled_from([8, 64, 96, 512]), st.sampled_from([16, 64, 128, 1024]),
       st.sampled_from(list(LoopOrder)), st.sampled_from([0, 1, 2]))
def test_the_bound_without_the_layout_is_the_plans(name, m, n, k, batch, tm, tn, tk, order, halvings):
    """The mapper bounds a tiling from its geometry alone: the same number as the bound of its steps."""
    d = load_design(name)
    q = d.native_quant
    spec = GemmSpec(m=m, n=n, k=k, batch=batch, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, group_size=q.group_size if q.quantized_weights else 0,
                    scale_bits=q.scale_bits, zero_bits=q.zero_bits)
    for df in d.tile.pe_array.dataflows:
        tiling = GemmTiling(tm, tn, max(tk, spec.group_size), order, df, 0.0, max(1, d.num_tiles >> halvings))
        plan = plan_gemm(spec, d, tiling)
        assert layout.lower_bound_ns(spec, d, tiling, StepTimer(d, spec, df)) == plan_time_lower_bound_ns(plan, d)


def test_stacked_figures_are_each_designs_own():
    """One estimate pass over several designs gives, entry by entry, each design's own estimate."""
    from mixpe_sys.hw.plan import LoopOrder
    from mixpe_sys.hw.tile_step import StepTimer
    from mixpe_sys.mapping.estimate import Estimator, design_figures, stacked_figures
    from mixpe_sys.mapping.tiling import slower_designs
    design = load_design("a100-like")
    designs = slower_designs(design)
    spec = GemmSpec(m=300, n=1000, k=2048, weight_bits=16, activation_bits=16, output_bits=16,
                    activation_format=NumberFormat.FP)
    stacked = Estimator(spec, design, stacked_figures(designs), True)
    for df in design.tile.pe_array.dataflows:
        timer = StepTimer(design, spec, df)
        together, steps, traffic = stacked.estimate(timer, LoopOrder.M_OUTER, 128, 128, 256, 54)
        for i, d in enumerate(designs):
            alone = Estimator(spec, d, design_figures(d), True).estimate(timer, LoopOrder.M_OUTER, 128, 128, 256, 54)
            assert (together[i], steps, traffic) == alone
