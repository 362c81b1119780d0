"""The steady-state fast-forward against the full simulation: the same time, counters, unit busy
times, energy and step rows, bit for bit (the full simulation is the reference)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixpe_sys.hw.accelerator as accelerator
import mixpe_sys.mapping.tiling as tiling_module
from mixpe_sys import load_design
from mixpe_sys.cli import main
from mixpe_sys.designs import design_names
from mixpe_sys.hw.precision import run_quant
from mixpe_sys.hw.steady_state import replay_sum
from mixpe_sys.mapping.gemm import plan_gemm
from mixpe_sys.sim.op_sim import simulate_op
from mixpe_sys.sim.plan_run import run_plan
from mixpe_sys.workload.gemm_spec import GemmSpec
from mixpe_sys.mapping.vector import plan_vector
from mixpe_sys.workload.ops import Op, OpKind, vector_op

DESIGNS = design_names()


def spec_for(design, m: int, n: int, k: int, batch: int = 1) -> GemmSpec:
    """The GEMM at the design's own precisions."""
    q = run_quant(design)
    return GemmSpec(m=m, n=n, k=k, batch=batch, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, output_bits=q.activation_bits,
                    group_size=q.group_size if q.quantized_weights else 0, scale_bits=q.scale_bits,
                    zero_bits=q.zero_bits)


def both(design, spec, watch_always: bool = False):
    """(full run, fast-forwarded run) of the mapper's plan for ``spec``; ``watch_always`` looks for
    periods in every run, however short, and with row-buffer timing too."""
    plan = plan_gemm(spec, design)
    full = run_plan(plan, design, fast_forward=False)
    with pytest.MonkeyPatch.context() as mp:
        if watch_always:
            mp.setattr(accelerator, "worth_watching", lambda plan, config: True)
        return full, run_plan(plan, design, fast_forward=True)


def assert_identical(full, fast):
    """Every figure of the two runs is the same float, every step row the same row."""
    assert fast.cost == full.cost  # time, cycles, bytes, energy terms, unit busy times (exact ==)
    assert fast.busy_ns == full.busy_ns  # every unit, not only the per-class totals
    # the same rows in the same order
    assert list(map(dataclasses.astuple, fast.recorder.steps)) == list(map(dataclasses.astuple, full.recorder.steps))
    assert full.skipped_steps == 0


shapes = st.fixed_dictionaries({
    "m": st.sampled_from([1, 8, 64, 200, 512, 1024]),
    "n": st.integers(64, 4096),
    "k": st.integers(64, 4096),
    "batch": st.sampled_from([1, 1, 1, 2]),
})


@pytest.mark.parametrize("name", DESIGNS)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes)
def test_fast_forward_is_the_full_simulation_on_every_design(name, shape):
    design = load_design(name)
    full, fast = both(design, spec_for(design, shape["m"], shape["n"], shape["k"], shape["batch"]), watch_always=True)
    assert_identical(full, fast)


@pytest.mark.slow
@pytest.mark.parametrize("name", DESIGNS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({"m": st.integers(1, 4096), "n": st.integers(16, 16384), "k": st.integers(16, 8192),
                              "batch": st.integers(1, 4)}))
def test_fast_forward_is_the_full_simulation_on_larger_gemms(name, shape):
    design = load_design(name)
    spec = spec_for(design, shape["m"], shape["n"], shape["k"], shape["batch"])
    assert_identical(*both(design, spec))
    full, fast = both(design, spec, watch_always=True)
    assert_identical(full, fast)


# GEMMs whose steady state repeats: one tile without interconnect (fp16, bit-serial bitfusion), a
# post-GEMM dequant unit (paper-mixpe-w4a8)
SKIPPING = [("paper-fp16", 512, 4096, 4096), ("paper-mixpe-w4a8", 2048, 2048, 2048),
            ("paper-bitfusion", 512, 4096, 4096)]


@pytest.mark.parametrize("name,m,n,k", SKIPPING)
def test_skipped_periods_give_the_full_simulations_figures(name, m, n, k):
    design = load_design(name)
    full, fast = both(design, spec_for(design, m, n, k))
    assert fast.skipped_steps > 0  # the comparison is not vacuous
    assert len(fast.recorder.steps) == full.cost.tile_steps  # skipped steps still have their rows
    assert_identical(full, fast)


# eight tiles sharing DRAM channels with row-buffer timing, a global buffer that stages each
# activation tile once, a star interconnect: designs the fast-forward leaves alone by default (its
# row check costs what it saves), watched here to check the staging and row-activation replay
@pytest.mark.parametrize("name,m,n,k", [("int8", 4096, 4096, 4096), ("ant", 4096, 8192, 4096)])
def test_forced_fast_forward_is_exact_with_row_buffers_and_shared_staging(name, m, n, k):
    design = load_design(name)
    spec = spec_for(design, m, n, k)
    assert design.dram.row_buffer is not None and design.global_buffer is not None and design.num_tiles > 1
    assert not accelerator.worth_watching(plan_gemm(spec, design), design)
    full, fast = both(design, spec, watch_always=True)
    assert fast.skipped_steps > 0
    assert_identical(full, fast)


# snapshots where another tile has booked a step's load but not yet its staged activation copy:
# that step is in flight (its load start and DRAM bytes are set), so the period check, the
# signature and the skip must cover it (these raised IndexError, or gave a row with load start 0)
@pytest.mark.parametrize("m,n,k,batch", [(4019, 10634, 1080, 1), (3845, 728, 2543, 4)])
def test_forced_fast_forward_is_exact_with_a_staged_copy_pending(m, n, k, batch):
    design = load_design("mixpe-w4a16")
    full, fast = both(design, spec_for(design, m, n, k, batch), watch_always=True)
    assert fast.skipped_steps > 0
    assert_identical(full, fast)


def test_vector_unit_plans_skip_exactly_too():
    design = load_design("paper-fp16")
    op = vector_op("softmax", OpKind.SOFTMAX, elements=16 << 20, read_bits_per_element=16,
                   write_bits_per_element=16, ops_per_element=5)
    plan = plan_vector(op, design)
    full, fast = run_plan(plan, design, fast_forward=False), run_plan(plan, design)
    assert fast.skipped_steps > 0
    assert_identical(full, fast)


def test_op_costs_are_the_same_with_and_without_fast_forward():
    design = load_design("paper-int8")
    op = Op(name="ffn_up", kind=OpKind.LINEAR, m=2048, n=2048, k=2048, weight_bits=8, activation_bits=8,
            output_bits=8)
    assert simulate_op(op, design, fast_forward=True) == simulate_op(op, design, fast_forward=False)


def test_the_mappers_runs_skip_periods_and_give_the_full_runs_figures():
    """The mapper ranks its shortlist by runs that fast-forward (an op's cost is its winner's run):
    they skip steps and come out as the full runs, unit for unit."""
    design = load_design("paper-fp16")
    spec = spec_for(design, 2048, 4096, 4096)
    tiling = tiling_module.choose_tiling(spec, design)
    assert tiling_module.choose_tiling(spec, design, fast_forward=False) == tiling
    fast = tiling_module.simulated(spec, design, tiling, True)
    full = tiling_module.simulated(spec, design, tiling, False)
    assert fast.steady_state.skipped_steps > tiling.tile_steps(spec) // 2
    assert fast.steady_state.pipelines == []  # the watcher lets go of the run's steps
    assert fast.env.now == full.env.now
    assert [(s.busy_ns, s.served_bytes) for s in fast.fifo_servers()] == \
        [(s.busy_ns, s.served_bytes) for s in full.fifo_servers()]
    assert [(t.busy_cycles, t.counts) for t in fast.tiles] == [(t.busy_cycles, t.counts) for t in full.tiles]


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 1e12), st.lists(st.floats(0.0, 1e6), min_size=1, max_size=20), st.integers(1, 40))
def test_replay_sum_rounds_each_addition_as_the_simulation_does(total, increments, times):
    expected = total
    for _ in range(times):
        for x in increments:
            expected += x
    assert replay_sum(total, np.asarray(increments, dtype=np.float64), times) == expected


def test_cli_no_fast_forward_prints_the_same_figures(capsys):
    args = ["gemm", "--m", "512", "--n", "4096", "--k", "4096", "--design", "paper-fp16", "--json"]
    assert main(args) == 0
    fast = json.loads(capsys.readouterr().out)
    assert main(args + ["--no-fast-forward"]) == 0
    assert json.loads(capsys.readouterr().out) == fast


def test_cli_run_no_fast_forward_prints_the_same_figures(capsys):
    args = ["run", "--model", "opt-6.7b", "--workload", "paper", "--batch", "64", "--design", "paper-mixpe-w4a8",
            "--json", "--no-cache", "--workers", "1"]
    assert main(args) == 0
    fast = json.loads(capsys.readouterr().out)
    assert main(args + ["--no-fast-forward"]) == 0
    assert json.loads(capsys.readouterr().out) == fast
