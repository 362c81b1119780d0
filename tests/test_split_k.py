"""Split-K: a GEMM of fewer output blocks than tiles cut along K into partial sums, which a second
phase adds up (expected byte and op counts by hand from the shapes)."""

from __future__ import annotations

import dataclasses
from math import ceil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpe_sys import load_design
from mixpe_sys.hw.accelerator import drained, plan_time_lower_bound_ns
from mixpe_sys.hw.config import Dataflow
from mixpe_sys.mapping.layout import lay_out, split_ranges
from mixpe_sys.mapping.tiling import choose_tiling
from mixpe_sys.workload.gemm_spec import GemmSpec
from mixpe_sys.workload.quant import NumberFormat


def fp16(m: int, n: int, k: int) -> GemmSpec:
    return GemmSpec(m=m, n=n, k=k, weight_bits=16, activation_bits=16, activation_format=NumberFormat.FP,
                    output_bits=16)


def tiling(tm, tn, tk, split, tiles=0):
    from mixpe_sys.hw.plan import GemmTiling, LoopOrder
    return GemmTiling(tm, tn, tk, LoopOrder.M_OUTER, Dataflow.OUTPUT_STATIONARY, 0.0, tiles, split)


@pytest.fixture(scope="module")
def h100():
    return load_design("h100-like")


def test_split_ranges_cover_k_once():
    assert split_ranges(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert split_ranges(8, 2) == [(0, 4), (4, 8)]


def test_split_plan_reads_each_operand_once_and_keeps_partials_in_l2(h100):
    """1 x 1024 x 8192 FP16, 16 column blocks of 64, K in 32 slices of 256 split 4 ways: the DRAM reads
    the weights (1024 x 8192 x 2 B) and the activations (8192 x 2 B) once and writes only the output
    (1024 x 2 B); the 16 x 4 partial blocks (64 x 4 B each) go to the L2 and back; the second phase
    adds 4 partials per output element on the vector units."""
    spec = fp16(1, 1024, 8192)
    plan = lay_out(spec, h100, tiling(1, 64, 256, 4))
    assert sum(1 for steps in plan.steps if steps) == 64  # 16 blocks x 4 ranges, one per tile
    assert sum(len(s) for s in plan.steps) == 16 * 32
    assert sum(len(s) for s in plan.then.steps) == 16 * 4
    kept = [s for _, s in plan.iter_steps() if s.store_key is not None]
    assert len(kept) == 64 and all(s.store_bytes == 64 * 4 for s in kept)
    a = drained(plan, h100)
    assert a.dram.read_bytes == 1024 * 8192 * 2 + 8192 * 2
    assert a.dram.write_bytes == 1024 * 2
    assert sum(t.counts[5] for t in a.tiles) == 1024 * 4  # vector ops: one add per element and partial
    assert a.global_buffer.write_bytes == 8192 * 2 + 64 * 64 * 4  # staged activations, then partials
    assert a.env.now >= plan_time_lower_bound_ns(plan, h100)


def test_without_a_global_buffer_partials_go_through_dram():
    """The same split on a design without a global buffer writes the partials to DRAM and reads them back:
    4 ranges x 256 x 64 x 4 B each way on top of the operands and the output."""
    design = load_design("mixpe-w4a8")
    design = design.replace(global_buffer=None)
    spec = GemmSpec(m=1, n=256, k=4096, weight_bits=4, activation_bits=8, output_bits=8, group_size=128)
    plan = lay_out(spec, design, tiling(1, 64, 512, 2))
    a = drained(plan, design)
    partials = 4 * 2 * 64 * design.tile.accumulator_bits // 8
    weights = spec.weight_bytes(4096, 256)
    # each of the 8 tiles loads its own activation slices: without a global buffer every load is a read
    activations = 4 * spec.activation_bytes(1, 4096)
    assert a.dram.read_bytes == weights + activations + partials
    assert a.dram.write_bytes == 256 + partials


def test_reduction_starts_after_every_range(h100):
    """The second phase starts once every tile has finished the first (its partials are all kept)."""
    from mixpe_sys.hw.accelerator import Accelerator
    from mixpe_sys.metrics.recorder import Recorder
    import simpy
    spec = fp16(1, 1024, 8192)
    plan = lay_out(spec, h100, tiling(1, 64, 256, 4))
    env = simpy.Environment()
    rec = Recorder()
    accel = Accelerator(env, h100, rec)
    env.run(until=accel.start_gemm(0, plan))
    rows = rec.steps_frame()
    first = rows[rows["k"] > 0]
    second = rows[rows["k"] == 0]
    assert len(second) == 64 and len(first) == 16 * 32
    assert second["compute_start_ns"].min() >= first["done_ns"].max()


def test_mapper_splits_a_narrow_decode_gemm(h100):
    """Llama-2-70B's K/V projection at batch 1 (1 x 1024 x 8192) has 16 column blocks of 64 for 132
    SMs: the mapper splits K, and the split runs faster than every unsplit tiling it tried."""
    spec = fp16(1, 1024, 8192)
    chosen = choose_tiling(spec, h100)
    assert chosen.split_k > 1
    split_ns = drained(lay_out(spec, h100, chosen), h100).env.now
    unsplit_ns = drained(lay_out(spec, h100, dataclasses.replace(chosen, split_k=1, tiles=16)), h100).env.now
    assert split_ns < unsplit_ns / 2
    # and it streams at least 60 % of the sustained HBM bandwidth (16.8 MB over 3.35 TB/s x 0.92)
    hbm_ns = (1024 * 8192 * 2 + 8192 * 2 + 2048) / (h100.dram.bandwidth_bytes_per_s * 0.92) * 1e9
    assert split_ns < hbm_ns / 0.6


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 40), n=st.integers(1, 300), k=st.integers(64, 3000), split=st.sampled_from([2, 3, 4]),
       name=st.sampled_from(["h100-like", "mixpe-w4a8", "a100-like"]))
def test_split_runs_are_bounded_and_count_every_mac(m, n, k, split, name):
    """Any split: every MAC once in the first phase, the lower bound below the run, all DRAM bytes
    by hand (operands read, output written; partials through DRAM only without a kept slot)."""
    design = load_design(name)
    bits = (16, 16, NumberFormat.FP) if name != "mixpe-w4a8" else (4, 8, NumberFormat.INT)
    spec = GemmSpec(m=m, n=n, k=k, weight_bits=bits[0], activation_bits=bits[1], activation_format=bits[2],
                    output_bits=16)
    tk = 64
    if ceil(k / tk) < split:
        return
    t = tiling(min(m, 16), min(n, 64), tk, split)
    plan = lay_out(spec, design, t)
    assert sum(s.macs for _, s in plan.iter_steps()) == spec.macs
    assert sum(len(s) for s in plan.steps) + sum(len(s) for s in plan.then.steps) == t.tile_steps(spec)
    assert plan.tile_steps() == t.tile_steps(spec)
    a = drained(plan, design)
    assert a.env.now >= plan_time_lower_bound_ns(plan, design)
    assert a.dram.write_bytes == spec.output_bytes(m, n)  # partials kept in the global buffer
