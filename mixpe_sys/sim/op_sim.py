"""Simulate one operator from idle to drained and summarise its cost."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..energy import op_energy
from ..hw.config import AcceleratorConfig
from ..mapping.gemm import peak_macs_per_s, plan_gemm
from ..mapping.vector import plan_vector
from ..workload.ops import Op
from ..workload.quant import NumberFormat
from .gemm import PlanRun, run_plan


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
    # counters of the energy model (mixpe_sys.energy)
    weight_bits: int = 0
    activation_bits: int = 0
    activation_fp: bool = False
    w_sram_read_bytes: int = 0  # weight-buffer reads by the array
    a_sram_read_bytes: int = 0  # activation-buffer reads by the array
    w_sram_write_bytes: int = 0  # weight-buffer fills
    a_sram_write_bytes: int = 0  # activation-buffer fills
    gbuf_read_bytes: int = 0
    gbuf_write_bytes: int = 0
    dequant_elements: int = 0  # elements scaled post-GEMM, or weights converted in-loop
    vector_ops: int = 0  # vector-unit element operations
    # energy (J); energy_j is the sum of the four parts
    static_j: float = 0.0
    dram_j: float = 0.0
    buffer_j: float = 0.0
    core_j: float = 0.0
    energy_j: float = 0.0

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


def cost_from_run(run: PlanRun, design: AcceleratorConfig, *, macs: int, weight_bits: int = 0,
                  activation_bits: int = 0, activation_fp: bool = False, vector_ops: int = 0,
                  memory_time_ns: float = 0.0, compute_time_ns: float = 0.0, tile_steps: int = 0) -> OpCost:
    """The :class:`OpCost` of a finished run (device time alone), with its energy.

    Kernel launch costs are added per run mode by :func:`mixpe_sys.sim.launch.with_launch`.
    """
    time_ns = run.time_ns
    cost = OpCost(time_ns=time_ns, core_cycles=round(time_ns / design.cycle_ns), compute_cycles=run.compute_cycles,
                  stall_cycles=run.stall_cycles,
                  dequant_cycles=run.dequant_cycles, dequant_stall_ns=run.dequant_stall_ns,
                  dram_read_bytes=run.dram_read_bytes, dram_write_bytes=run.dram_write_bytes,
                  sram_read_bytes=run.sram_read_bytes, sram_write_bytes=run.sram_write_bytes, macs=macs,
                  memory_time_ns=memory_time_ns, compute_time_ns=compute_time_ns, tile_steps=tile_steps,
                  weight_bits=weight_bits, activation_bits=activation_bits, activation_fp=activation_fp,
                  w_sram_read_bytes=run.w_sram_read_bytes, a_sram_read_bytes=run.a_sram_read_bytes,
                  w_sram_write_bytes=run.w_sram_write_bytes, a_sram_write_bytes=run.a_sram_write_bytes,
                  gbuf_read_bytes=run.gbuf_read_bytes, gbuf_write_bytes=run.gbuf_write_bytes,
                  dequant_elements=run.dequant_elements, vector_ops=vector_ops)
    e = op_energy(cost, design)
    return dataclasses.replace(cost, static_j=e.static_j, dram_j=e.dram_j, buffer_j=e.buffer_j, core_j=e.core_j,
                               energy_j=e.energy_j)


def simulate_op(op: Op, design: AcceleratorConfig) -> OpCost:
    """Map ``op`` (array or vector unit) and run it in a fresh simulation."""
    plan = plan_gemm(op.gemm_spec(), design) if op.kind.on_array else plan_vector(op, design)
    run = run_plan(plan, design, record_steps=False)
    memory, compute = op_roofline_ns(op, design)
    return cost_from_run(run, design, macs=op.macs, weight_bits=op.weight_bits, activation_bits=op.activation_bits,
                         activation_fp=op.activation_format is NumberFormat.FP,
                         vector_ops=0 if op.kind.on_array else op.elements * op.ops_per_element,
                         memory_time_ns=memory, compute_time_ns=compute,
                         tile_steps=sum(len(s) for s in plan.steps))
