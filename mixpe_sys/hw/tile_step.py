"""The timing of one tile step: the PE array, its SRAM read ports, the dequant and vector units together.

Each unit's closed form lives in its own module (:mod:`.array`, :mod:`.sram`,
:mod:`.dequant`, :mod:`.vector`); this module combines them the way a compute
tile runs a step: the array streams its operands out of the buffers' array-side
ports (the step takes the longer of the PE rule and the busiest port), an
in-loop converter sits in front of the array, and a post-GEMM dequant unit
follows it. The simulation (:mod:`.tile`) and the mapper's estimate
(:mod:`mixpe_sys.mapping.estimate`) both ask a :class:`StepTimer`, so they
cannot disagree about a step.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import ceil

from ..metrics.records import StepCost
from ..workload.gemm_spec import GemmSpec
from .array import tile_work
from .attention_step import AttentionTimer
from .config import AcceleratorConfig, Dataflow, DequantPlacement
from .dequant import in_loop, post_gemm_cycles, post_gemm_elements
from .pe import pe_model
from .plan import GemmPlan, TileStep
from .sram import port_cycles
from .vector import vector_cycles


def pe_rate(spec: GemmSpec, accel: AcceleratorConfig) -> Fraction:
    """MACs per PE per cycle of ``accel``'s PE for ``spec``'s operand widths (MappingError if it cannot)."""
    return pe_model(accel.tile.pe_array.pe).macs_per_cycle(spec.weight_bits, spec.activation_bits,
                                                           spec.activation_format)


class StepTimer:
    """Cycles and SRAM traffic of the steps of one op on one design (memoised per step shape).

    Parameters
    ----------
    accel:
        The design.
    spec:
        The GEMM (None for a vector op).
    dataflow:
        The GEMM's dataflow.
    vector_ops_per_element:
        Vector ops only: element operations per element.
    """

    def __init__(self, accel: AcceleratorConfig, spec: GemmSpec | None, dataflow: Dataflow,
                 vector_ops_per_element: int = 0):
        self.accel = accel
        self.spec = spec
        self.dataflow = dataflow
        self.vector_ops_per_element = vector_ops_per_element
        self._memo: dict = {}
        if spec is not None:
            pe = pe_model(accel.tile.pe_array.pe)
            self.rate = pe.macs_per_cycle(spec.weight_bits, spec.activation_bits, spec.activation_format)
            self.os_factors = (pe.output_stationary_factors(spec.weight_bits, spec.activation_bits,
                                                            spec.activation_format)
                               if dataflow is Dataflow.OUTPUT_STATIONARY else None)

    def step(self, s: TileStep) -> StepCost:
        """The cost of step ``s`` (GEMM or vector)."""
        if self.spec is None:
            return self.vector(s.m, s.a_bytes, s.store_bytes)
        return self.gemm(s.m, s.n, s.k, s.a_key is not None, s.kk == 0)

    def gemm(self, m: int, n: int, k: int, activations_new: bool, first_k: bool) -> StepCost:
        """An ``[m, k] x [k, n]`` GEMM step; ``first_k``: accumulation starts (no partial sums to read)."""
        key = (m, n, k, activations_new, first_k)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        spec, tile = self.spec, self.accel.tile
        work = tile_work(m, n, k, tile.pe_array, self.dataflow, self.rate, self.os_factors)
        a_reads = work.a_passes * spec.activation_bytes(m, k)
        w_reads = work.w_passes * spec.weight_bytes(k, n)
        acc = ceil(m * n * tile.accumulator_bits / 8)
        o_reads = 0 if first_k else acc  # read-modify-write of the partial sums
        a_port = port_cycles(a_reads, tile.activation_buffer)
        w_port = port_cycles(w_reads, tile.weight_buffer)
        o_port = port_cycles(o_reads + acc, tile.output_buffer)
        compute = max(work.cycles, a_port, w_port, o_port)
        dq = tile.dequant
        dequant = elements = convert = stall = 0
        if spec.group_size and dq.placement is DequantPlacement.IN_LOOP:
            elements = k * n * work.w_passes  # every weight, each time it enters the array
            conv = in_loop(elements, compute, dq)
            compute, convert, stall = conv.compute_cycles, conv.busy_cycles, conv.stall_cycles
        elif spec.group_size and dq.placement is DequantPlacement.POST_GEMM:
            elements = post_gemm_elements(m, n, k, spec.group_size, activations_new)
            dequant = post_gemm_cycles(elements, dq)
        cost = StepCost(compute_cycles=compute, array_cycles=work.cycles, folds=work.folds,
                        activation_port_cycles=a_port, weight_port_cycles=w_port, output_port_cycles=o_port,
                        dequant_cycles=dequant, convert_cycles=convert, convert_stall_cycles=stall,
                        dequant_elements=elements, vector_cycles=0, vector_ops=0,
                        a_sram_read_bytes=a_reads, w_sram_read_bytes=w_reads, o_sram_read_bytes=o_reads,
                        o_sram_write_bytes=acc)
        self._memo[key] = cost
        return cost

    def vector(self, elements: int, in_bytes: int, out_bytes: int) -> StepCost:
        """A vector-unit step over ``elements`` elements read from the activation buffer (``in_bytes``)
        and written to the output buffer (``out_bytes``)."""
        key = (elements, in_bytes, out_bytes)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        tile = self.accel.tile
        ops = elements * self.vector_ops_per_element
        vec = vector_cycles(ops, tile.vector)
        a_port = port_cycles(in_bytes, tile.activation_buffer)
        o_port = port_cycles(out_bytes, tile.output_buffer)
        cost = StepCost(compute_cycles=max(vec, a_port, o_port), array_cycles=0, folds=0,
                        activation_port_cycles=a_port, weight_port_cycles=0, output_port_cycles=o_port,
                        dequant_cycles=0, convert_cycles=0, convert_stall_cycles=0, dequant_elements=0,
                        vector_cycles=vec, vector_ops=ops, a_sram_read_bytes=in_bytes, w_sram_read_bytes=0,
                        o_sram_read_bytes=0, o_sram_write_bytes=out_bytes)
        self._memo[key] = cost
        return cost


def plan_timer(plan: GemmPlan, accel: AcceleratorConfig):
    """The step timer of ``plan`` on ``accel`` (a :class:`StepTimer`, or for fused attention an
    :class:`~mixpe_sys.hw.attention_step.AttentionTimer`)."""
    if plan.attention is not None:
        return _attention_timer(accel, plan.attention, plan.tiling.dataflow)
    return step_timer(accel, plan.spec, plan.tiling.dataflow, plan.vector_ops_per_element)


@lru_cache(maxsize=256)
def _attention_timer(accel: AcceleratorConfig, spec, dataflow: Dataflow):
    return AttentionTimer(accel, spec, dataflow)


@lru_cache(maxsize=1024)
def step_timer(accel: AcceleratorConfig, spec: GemmSpec | None, dataflow: Dataflow,
               ops_per_element: int = 0) -> StepTimer:
    """The :class:`StepTimer` of ``spec`` (None: a vector op of ``ops_per_element``) on ``accel``
    (memoised: its step costs are shared by every run and estimate of the same op)."""
    return StepTimer(accel, spec, dataflow, ops_per_element)
