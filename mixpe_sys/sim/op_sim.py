"""Simulate one operator from idle to drained and summarise its cost."""

from __future__ import annotations

from ..hw.config import AcceleratorConfig
from ..mapping.attention import plan_attention
from ..mapping.gemm import peak_macs_per_s
from ..mapping.tiling import choose_tiling, simulated
from ..mapping.vector import plan_vector
from ..metrics.records import OpCost
from ..workload.ops import Op, OpKind
from ..workload.quant import NumberFormat
from .plan_run import run_cost, run_plan

__all__ = ["OpCost", "op_roofline_ns", "simulate_op"]


def op_roofline_ns(op: Op, design: AcceleratorConfig) -> tuple[float, float]:
    """(memory time, compute time) lower bounds of ``op`` on ``design`` (ns)."""
    reads, writes = op.dram_bytes()
    memory = (reads + writes) * 1e9 / design.dram.bandwidth_bytes_per_s
    if op.kind is OpKind.ATTENTION:  # the products at the peak MAC rate (the softmax's vector work aside)
        compute = op.macs * 1e9 / peak_macs_per_s(op.attention_spec().gemm_spec(), design)
    elif op.kind.on_array:
        compute = op.macs * 1e9 / peak_macs_per_s(op.gemm_spec(), design)
    else:
        rate = design.num_tiles * design.tile.vector.lanes * design.frequency_hz
        compute = op.elements * op.ops_per_element * 1e9 / rate
    return memory, compute


def simulate_op(op: Op, design: AcceleratorConfig, fast_forward: bool = True) -> OpCost:
    """Map ``op`` (array or vector unit) and run it in a fresh simulation (``fast_forward``: see
    :func:`mixpe_sys.sim.plan_run.run_plan`; the same cost either way). A GEMM's cost is that of the
    mapper's own run of the tiling it chose (:func:`mixpe_sys.mapping.tiling.simulated`), not run again."""
    memory, compute = op_roofline_ns(op, design)
    what = dict(macs=op.macs, memory_time_ns=memory, compute_time_ns=compute, weight_bits=op.weight_bits,
                activation_bits=op.activation_bits, activation_fp=op.activation_format is NumberFormat.FP)
    if op.kind is OpKind.ATTENTION:
        plan = plan_attention(op.attention_spec(), design)
    elif op.kind.on_array:
        spec = op.gemm_spec()
        tiling = choose_tiling(spec, design, fast_forward)
        return run_cost(simulated(spec, design, tiling, fast_forward), tiling.tile_steps(spec), **what).cost
    else:
        plan = plan_vector(op, design)
    return run_plan(plan, design, record_steps=False, fast_forward=fast_forward, **what).cost
