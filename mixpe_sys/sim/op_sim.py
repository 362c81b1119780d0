"""Simulate one operator from idle to drained and summarise its cost."""

from __future__ import annotations

from dataclasses import dataclass

from ..hw.config import AcceleratorConfig
from ..mapping.gemm import peak_macs_per_s, plan_gemm
from ..mapping.vector import plan_vector
from ..workload.ops import Op
from .gemm import run_plan


@dataclass(frozen=True, slots=True)
class OpCost:
    """What one op costs on a design (every unit idle at its start and end)."""

    time_ns: float
    core_cycles: int
    compute_cycles: int
    stall_cycles: int
    dequant_cycles: int
    dequant_stall_ns: float
    dram_read_bytes: int
    dram_write_bytes: int
    sram_read_bytes: int
    sram_write_bytes: int
    macs: int
    memory_time_ns: float  # compulsory DRAM bytes / peak bandwidth
    compute_time_ns: float  # MACs / peak MAC rate (array ops) or element ops / vector rate
    tile_steps: int

    @property
    def bound(self) -> str:
        """``memory`` or ``compute``: the larger roofline term."""
        return "memory" if self.memory_time_ns >= self.compute_time_ns else "compute"


def op_roofline_ns(op: Op, design: AcceleratorConfig) -> tuple[float, float]:
    """(memory time, compute time) lower bounds of ``op`` on ``design`` (ns)."""
    reads, writes = op.dram_bytes()
    memory = (reads + writes) * 1e9 / design.dram.bandwidth_bytes_per_s
    if op.kind.on_array:
        compute = op.macs * 1e9 / peak_macs_per_s(op.gemm_spec(), design)
    else:
        rate = design.num_tiles * design.tile.vector.lanes * design.frequency_hz
        compute = op.elements * op.ops_per_element * 1e9 / rate
    return memory, compute


def simulate_op(op: Op, design: AcceleratorConfig) -> OpCost:
    """Map ``op`` (array or vector unit) and run it in a fresh simulation."""
    plan = plan_gemm(op.gemm_spec(), design) if op.kind.on_array else plan_vector(op, design)
    run = run_plan(plan, design)
    # launch/synchronisation overhead is idle time: it counts as stall, not compute
    memory, compute = op_roofline_ns(op, design)
    time_ns = run.time_ns + design.op_overhead_ns
    return OpCost(time_ns=time_ns, core_cycles=round(time_ns / design.cycle_ns), compute_cycles=run.compute_cycles,
                  stall_cycles=run.stall_cycles + round(design.op_overhead_ns / design.cycle_ns), dequant_cycles=run.dequant_cycles,
                  dequant_stall_ns=run.dequant_stall_ns, dram_read_bytes=run.dram_read_bytes,
                  dram_write_bytes=run.dram_write_bytes, sram_read_bytes=run.sram_read_bytes,
                  sram_write_bytes=run.sram_write_bytes, macs=op.macs, memory_time_ns=memory,
                  compute_time_ns=compute, tile_steps=sum(len(s) for s in plan.steps))
