"""The tile pipeline's recurrences against the same pipeline written as four SimPy
processes coupled by SimPy queues (loader, array, dequant unit, writeback)."""

from __future__ import annotations

import dataclasses

import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.hw.tile import ComputeTile
from mixpe_sys.metrics.records import StepRecord
from mixpe_sys.sim.plan_run import run_plan


def queued_pipeline(tile: ComputeTile, op_id: int, plan, steps, timer, shared: bool, watch=None) -> simpy.Event:
    """Reference: one process per stage; bounded SimPy stores and containers between them (never
    fast-forwarded: ``watch`` is None)."""
    assert watch is None
    env, dma, cyc = tile.env, tile.dma, tile.cycle_ns
    costs = {s.index: timer.step(s) for s in steps}
    tile._account(costs.values())
    cfg = tile.config
    in_slots = 2 if cfg.weight_buffer.double_buffered and cfg.activation_buffer.double_buffered else 1
    out_slots = 2 if cfg.output_buffer.double_buffered else 1
    ready, wb_queue = simpy.Store(env), simpy.Store(env)
    free_in = simpy.Container(env, capacity=in_slots, init=in_slots)
    free_out = simpy.Container(env, capacity=out_slots, init=out_slots)
    use_dequant = any(c.dequant_cycles for c in costs.values())
    dq_queue = simpy.Store(env, capacity=1) if use_dequant else None

    def record(item, done, written):
        s, load_start, load_end, dram, c_start, c_end, stall = item
        tile.recorder.step(StepRecord(
            op_id=op_id, tile=tile.index, step=s.index, inst=s.inst, i=s.i, j=s.j, kk=s.kk, m=s.m, n=s.n,
            k=s.k, macs=s.macs, load_start_ns=load_start, load_end_ns=load_end, compute_start_ns=c_start,
            compute_end_ns=c_end, done_ns=done, dequant_stall_ns=stall, dram_read_bytes=dram,
            dram_write_bytes=written, cost=costs[s.index]))

    def loader():
        for s in steps:
            yield free_in.get(1)
            start = done = env.now
            dram = 0
            if s.w_key is not None:
                done = dma.book_load(start, tile.index, tile.weight_buffer, s.w_addr, s.w_bytes)
                dram += s.w_bytes
            if s.a_key is not None:
                if shared:
                    staged, nbytes = dma.stage(start, s.a_key, s.a_addr, s.a_bytes)
                    dram += nbytes
                    if staged > env.now:
                        yield env.timeout(staged - env.now)
                    done = max(done, dma.book_copy(env.now, tile.index, tile.activation_buffer, s.a_bytes))
                else:
                    done = max(done, dma.book_load(start, tile.index, tile.activation_buffer, s.a_addr,
                                                   s.a_bytes))
                    dram += s.a_bytes
            if done > env.now:
                yield env.timeout(done - env.now)
            ready.put([s, start, env.now, dram, 0.0, 0.0, 0.0])

    def array():
        for s in steps:
            item = yield ready.get()
            if s.kk == 0:
                yield free_out.get(1)
            item[4] = env.now
            yield env.timeout(costs[s.index].compute_cycles * cyc)
            item[5] = env.now
            free_in.put(1)
            if dq_queue is not None:
                wait = env.now
                yield dq_queue.put(item)
                item[6] = env.now - wait
            elif s.store_bytes:
                wb_queue.put(item)
            else:
                record(item, env.now, 0)

    def dequant():
        for _ in steps:
            item = yield dq_queue.get()
            s = item[0]
            if costs[s.index].dequant_cycles:
                yield env.timeout(costs[s.index].dequant_cycles * cyc)
            if s.store_bytes:
                wb_queue.put(item)
            else:
                record(item, env.now, 0)

    def writeback():
        for _ in range(sum(1 for s in steps if s.store_bytes)):
            item = yield wb_queue.get()
            s = item[0]
            done = dma.book_store(env.now, tile.index, tile.output_buffer, s.store_addr, s.store_bytes)
            yield env.timeout(done - env.now)
            free_out.put(1)
            record(item, env.now, s.store_bytes)

    procs = [env.process(p()) for p in (loader, array, writeback)]
    if use_dequant:
        procs.append(env.process(dequant()))
    return simpy.AllOf(env, procs)


TILES = 4


def one_tile(name: str, double_buffered: bool):
    d = load_design(name)
    tile = d.tile
    if not double_buffered:
        tile = tile.replace(output_buffer=tile.output_buffer.replace(double_buffered=False))
    return d.replace(num_tiles=TILES, tile=tile)


cases = st.fixed_dictionaries({
    "design": st.sampled_from(["mixpe-w4a8", "mixpe-w4a16", "paper-int8", "int8"]),
    "double_buffered": st.booleans(),
    "m": st.integers(1, 200), "n": st.integers(1, 600), "k": st.integers(1, 900), "batch": st.integers(1, 2),
})


def records(run):
    return sorted(dataclasses.astuple(r) for r in run.recorder.steps)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_recurrences_equal_queued_processes_on_one_tile(case):
    design = one_tile(case["design"], case["double_buffered"])
    plan = simulate_gemm(case["m"], case["n"], case["k"], design, batch=case["batch"]).plan
    fast = run_plan(plan, design)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ComputeTile, "run_gemm", queued_pipeline)
        slow = run_plan(plan, design, fast_forward=False)
    assert fast.cost.time_ns == slow.cost.time_ns
    assert records(fast) == records(slow)
    # the reference counts the post-GEMM queue's waits per step; the tiles add the converters' stalls
    per_tile: dict = {}
    for r in slow.recorder.steps:
        per_tile[r.tile] = per_tile.get(r.tile, 0.0) + r.dequant_stall_ns + r.cost.convert_stall_cycles * design.cycle_ns
    assert fast.cost.dequant_stall_ns == pytest.approx(max(per_tile.values()))


def test_without_step_records_the_totals_are_the_same():
    design = load_design("mixpe-w4a8")
    plan = simulate_gemm(300, 500, 700, design).plan
    full, bare = run_plan(plan, design), run_plan(plan, design, record_steps=False)
    assert len(full.recorder.steps) == sum(len(s) for s in plan.steps) and not bare.recorder.steps
    assert bare.cost == full.cost and bare.busy_ns == full.busy_ns
