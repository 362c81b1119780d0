"""Run one mapped op on a fresh accelerator, from idle to drained, and total its cost."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import simpy

from ..energy import op_energy
from ..hw.accelerator import Accelerator
from ..hw.config import AcceleratorConfig
from ..hw.plan import GemmPlan
from ..metrics.recorder import Recorder
from ..metrics.records import Bound, OpCost, unit_classes


@dataclass(frozen=True)
class PlanRun:
    """The outcome of one run: the op's cost, the recorder with its step rows, every unit's busy time,
    and how many tile steps the fast-forward skipped (their figures are in the totals all the same)."""

    cost: OpCost
    recorder: Recorder = field(repr=False)
    busy_ns: dict[str, float] = field(repr=False)
    skipped_steps: int = 0


def run_plan(plan: GemmPlan, design: AcceleratorConfig, op_id: int = 0, *, macs: int = 0,
             memory_time_ns: float = 0.0, compute_time_ns: float = 0.0, weight_bits: int = 0,
             activation_bits: int = 0, activation_fp: bool = False, record_steps: bool = True,
             fast_forward: bool = True) -> PlanRun:
    """Run ``plan`` on a fresh accelerator (every unit idle, buffers empty) until it drains.

    Parameters
    ----------
    plan:
        The mapped op.
    design:
        The accelerator.
    op_id:
        Label of the op in step records.
    macs, memory_time_ns, compute_time_ns, weight_bits, activation_bits, activation_fp:
        What the op is (its MACs, roofline terms in ns and operand widths), for the cost record
        and the energy model.
    record_steps:
        Keep one row per tile step (False: none; every total is the same).
    fast_forward:
        Skip whole repeated periods of the steady state (:mod:`mixpe_sys.hw.steady_state`); every
        figure and step row is bit for bit what the full simulation gives.

    Returns
    -------
    PlanRun
        The device cost (launch costs are the run mode's: :func:`mixpe_sys.sim.launch.with_launch`),
        the recorder and the units' busy times.
    """
    env = simpy.Environment()
    accel = Accelerator(env, design, Recorder(steps=record_steps))
    env.run(until=accel.start_gemm(op_id, plan, fast_forward))
    return run_cost(accel, plan.tile_steps(), macs=macs, memory_time_ns=memory_time_ns,
                    compute_time_ns=compute_time_ns, weight_bits=weight_bits, activation_bits=activation_bits,
                    activation_fp=activation_fp)


def run_cost(accel: Accelerator, tile_steps: int, *, macs: int = 0, memory_time_ns: float = 0.0,
             compute_time_ns: float = 0.0, weight_bits: int = 0, activation_bits: int = 0,
             activation_fp: bool = False) -> PlanRun:
    """The :class:`PlanRun` of an accelerator that has run an op of ``tile_steps`` tile steps from idle
    until it drained (at its ``env.now``); the other parameters as :func:`run_plan`'s."""
    design, recorder = accel.config, accel.recorder
    device_ns = accel.env.now
    time_ns = device_ns  # a run's kernel launch cost is added by mixpe_sys.sim.launch.with_launch
    cycles = round(time_ns / design.cycle_ns)
    tiles = accel.tiles
    compute_cycles = max(t.busy_cycles for t in tiles)
    counts = [sum(t.counts[i] for t in tiles) for i in range(6)]
    a_fill = sum(t.activation_buffer.write_bytes for t in tiles)
    w_fill = sum(t.weight_buffer.write_bytes for t in tiles)
    dma_reads = sum(t.output_buffer.read_bytes + t.weight_buffer.read_bytes + t.activation_buffer.read_bytes
                    for t in tiles)
    dma_writes = a_fill + w_fill + sum(t.output_buffer.write_bytes for t in tiles)
    gbuf = accel.global_buffer
    g_r, g_w = (gbuf.read_bytes, gbuf.write_bytes) if gbuf is not None else (0, 0)
    busy = recorder.busy_ns()
    classes = unit_classes(busy)
    name, top = next(iter(classes.items()), ("none", 0.0))
    cost = OpCost(
        time_ns=time_ns, device_time_ns=device_ns, cycles=cycles, compute_cycles=compute_cycles,
        stall_cycles=max(0, cycles - compute_cycles),
        dequant_cycles=max(t.dequant_busy_cycles for t in tiles),
        dequant_stall_ns=max(t.dequant_stall_ns for t in tiles), macs=macs,
        tile_steps=tile_steps,
        dram_read_bytes=accel.dram.read_bytes, dram_write_bytes=accel.dram.write_bytes,
        sram_read_bytes=counts[0] + counts[1] + counts[2] + dma_reads + g_r,
        sram_write_bytes=counts[3] + dma_writes + g_w,
        w_sram_read_bytes=counts[1], a_sram_read_bytes=counts[0], w_sram_write_bytes=w_fill,
        a_sram_write_bytes=a_fill, gbuf_read_bytes=g_r, gbuf_write_bytes=g_w, dequant_elements=counts[4],
        vector_ops=counts[5], weight_bits=weight_bits, activation_bits=activation_bits,
        activation_fp=activation_fp, memory_time_ns=memory_time_ns, compute_time_ns=compute_time_ns,
        roofline_bound=Bound.MEMORY if memory_time_ns >= compute_time_ns else Bound.COMPUTE,
        utilization=compute_time_ns / time_ns if time_ns else 0.0,
        bottleneck=name, bottleneck_utilization=top / device_ns if device_ns else 0.0,
        static_energy_j=0.0, dram_energy_j=0.0, buffer_energy_j=0.0, core_energy_j=0.0, energy_j=0.0,
        unit_busy_ns=tuple(classes.items()))
    e = op_energy(cost, design)
    cost = dataclasses.replace(cost, static_energy_j=e.static_j, dram_energy_j=e.dram_j,
                               buffer_energy_j=e.buffer_j, core_energy_j=e.core_j, energy_j=e.energy_j)
    watch = accel.steady_state
    return PlanRun(cost=cost, recorder=recorder, busy_ns=busy,
                   skipped_steps=watch.skipped_steps if watch is not None else 0)
