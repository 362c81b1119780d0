"""The tile pipeline's recurrences against the same pipeline written as four SimPy
processes coupled by SimPy queues (loader, array, dequant unit, writeback), and the
static order in which the shared units serve the tiles' requests, by hand."""

from __future__ import annotations

import dataclasses

import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.hw.accelerator import Accelerator
from mixpe_sys.hw.dma import Dma
from mixpe_sys.hw.fifo import FifoServer
from mixpe_sys.hw.plan import Dataflow, GemmTiling, LoopOrder
from mixpe_sys.hw.tile import ComputeTile
from mixpe_sys.hw.tile_step import plan_timer
from mixpe_sys.mapping.layout import lay_out
from mixpe_sys.metrics.recorder import Recorder
from mixpe_sys.metrics.records import StepRecord
from mixpe_sys.sim.plan_run import run_plan


def queued_pipeline(env, tile: ComputeTile, op_id: int, plan, steps, timer, shared: bool) -> simpy.Event:
    """Reference: one process per stage; bounded SimPy stores and containers between them, the
    shared units booked when a stage reaches them."""
    dma, cyc = tile.dma, tile.cycle_ns
    costs = {s.index: timer.step(s) for s in steps}
    tile.account(costs.values())
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
            if s.store_key is not None and shared:  # a split-K partial sum, kept in the global buffer
                done = dma.book_keep(env.now, tile.index, tile.output_buffer, s.store_key, s.store_bytes)
            else:
                done = dma.book_store(env.now, tile.index, tile.output_buffer, s.store_addr, s.store_bytes)
            yield env.timeout(done - env.now)
            free_out.put(1)
            record(item, env.now, 0 if s.store_key is not None and shared else s.store_bytes)

    procs = [env.process(p()) for p in (loader, array, writeback)]
    if use_dequant:
        procs.append(env.process(dequant()))
    return simpy.AllOf(env, procs)


TILES = 4


def four_tiles(name: str, double_buffered: bool):
    """``name`` on four tiles, without DRAM row-buffer timing (which rows are open depends on the order
    of the accesses, which the reference does not keep)."""
    d = load_design(name)
    tile = d.tile
    if not double_buffered:
        tile = tile.replace(output_buffer=tile.output_buffer.replace(double_buffered=False))
    return d.replace(num_tiles=TILES, tile=tile, dram=d.dram.replace(row_buffer=None))


cases = st.fixed_dictionaries({
    "design": st.sampled_from(["mixpe-w4a8", "mixpe-w4a16", "paper-int8", "int8"]),
    "double_buffered": st.booleans(),
    "m": st.integers(1, 200), "n": st.integers(1, 600), "k": st.integers(1, 900), "batch": st.integers(1, 2),
})


def uncontended(self, now_ns: float, service_ns: float, nbytes: int = 0) -> float:
    """A shared unit that serves every request at once, as if it were the only one (the order in which
    requests are booked then cannot matter)."""
    self.busy_ns += service_ns
    self.served_bytes += nbytes
    return now_ns + service_ns


def queued_run(plan, design):
    """``plan`` run by :func:`queued_pipeline` on every tile, on a fresh accelerator (a second phase,
    ``plan.then``, once every tile has finished the first)."""
    env = simpy.Environment()
    recorder = Recorder(steps=True)
    accel = Accelerator(env, design, recorder)
    while plan is not None:
        timer = plan_timer(plan, design)
        share = accel.shared_activations and plan.share_activations
        procs = [queued_pipeline(env, tile, 0, plan, steps, timer, share)
                 for tile, steps in zip(accel.tiles, plan.steps) if steps]
        env.run(until=simpy.AllOf(env, procs))
        plan = plan.then
    return env.now, recorder, accel


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_recurrences_equal_queued_processes(case):
    """With shared units that never make a request wait, the pipeline's recurrences give what four
    SimPy processes per tile coupled by bounded queues give, time for time and record for record."""
    design = four_tiles(case["design"], case["double_buffered"])
    plan = simulate_gemm(case["m"], case["n"], case["k"], design, batch=case["batch"]).plan
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FifoServer, "reserve", uncontended)
        fast = run_plan(plan, design, fast_forward=False)
        slow_ns, slow_rec, accel = queued_run(plan, design)
    assert fast.cost.time_ns == slow_ns
    assert sorted(dataclasses.astuple(r) for r in fast.recorder.steps) == \
        sorted(dataclasses.astuple(r) for r in slow_rec.steps)
    # the reference counts the post-GEMM queue's waits per step; the tiles add the converters' stalls
    per_tile: dict = {}
    for r in slow_rec.steps:
        per_tile[r.tile] = per_tile.get(r.tile, 0.0) + r.dequant_stall_ns + r.cost.convert_stall_cycles * design.cycle_ns
    assert fast.cost.dequant_stall_ns == pytest.approx(max(per_tile.values()))


def test_without_step_records_the_totals_are_the_same():
    design = load_design("mixpe-w4a8")
    plan = simulate_gemm(300, 500, 700, design).plan
    full, bare = run_plan(plan, design), run_plan(plan, design, record_steps=False)
    assert len(full.recorder.steps) == sum(len(s) for s in plan.steps) and not bare.recorder.steps
    assert bare.cost == full.cost and bare.busy_ns == full.busy_ns


def test_shared_units_serve_requests_round_robin_in_a_static_order():
    """The tiles' requests reach the shared units in the static order of :mod:`mixpe_sys.hw.tile`:
    each tile's loads in step order with the store of step ``j`` right after the load of step
    ``j + 2`` (double-buffered inputs), the tiles taking one request each in turn."""
    design = load_design("int8").replace(num_tiles=2, global_buffer=None)
    assert design.tile.weight_buffer.double_buffered and design.tile.activation_buffer.double_buffered
    cols = design.tile.pe_array.cols
    spec = simulate_gemm(16, 6 * cols, 64, design).spec
    plan = lay_out(spec, design, GemmTiling(16, cols, 64, LoopOrder.M_OUTER, Dataflow.OUTPUT_STATIONARY, 0.0))
    assert [len(s) for s in plan.steps] == [3, 3] and all(s.store_bytes for t in plan.steps for s in t)
    booked = []
    with pytest.MonkeyPatch.context() as mp:
        def load(self, now, tile, buffer, addr, nbytes, _orig=Dma.book_load):
            booked.append(("load", tile, addr))
            return _orig(self, now, tile, buffer, addr, nbytes)

        def store(self, now, tile, buffer, addr, nbytes, _orig=Dma.book_store):
            booked.append(("store", tile, addr))
            return _orig(self, now, tile, buffer, addr, nbytes)
        mp.setattr(Dma, "book_load", load)
        mp.setattr(Dma, "book_store", store)
        run_plan(plan, design, fast_forward=False)
    turns = []
    for t, steps in enumerate(plan.steps):
        # (an activation tile a tile holds already is not loaded again)
        loads = [[("load", t, s.w_addr)] + ([("load", t, s.a_addr)] if s.a_key is not None else []) for s in steps]
        stores = [[("store", t, s.store_addr)] for s in steps]
        # L0 L1 L2 S0 (after the load of step 0 + 2), then S1 and S2 once the loads are done
        turns.append([loads[0], loads[1], loads[2], stores[0], stores[1], stores[2]])
    expected = [b for k in range(6) for t in range(2) for b in turns[t][k]]
    assert booked == expected
