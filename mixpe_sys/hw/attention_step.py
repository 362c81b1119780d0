"""The timing of one fused-attention tile step: Q K^T on the array, online softmax on the vector unit, P V on
the array, one after another.

A step holds one Q block of ``r`` rows (activation buffer) against one block of
``c`` keys (K and V in the weight buffer). Its three phases run in sequence on
the tile, as FlashAttention-2's warps run them (the softmax of a block needs
its scores, the P V product its probabilities; FlashAttention-3's overlap of
the softmax with the next block's products is not modelled):

1. ``S = Q K^T``: an ``[r, d] x [d, c]`` array tile (:func:`.array.tile_work`),
   Q read from the activation buffer, K from the weight buffer, S written to the
   output buffer at the accumulator width;
2. online softmax on the vector unit (:func:`.vector.vector_cycles`) over the
   op counts of :mod:`mixpe_sys.workload.attention`, S read from and P written
   back to the output buffer (in place), the output accumulator rescaled there
   (every block but the first);
3. ``O += P V``: an ``[r, c] x [c, d]`` array tile, P read from the output
   buffer, V from the weight buffer, O read-modified-written in the output
   buffer (written only, on the first block).

Each phase takes the longer of its unit's cycles and its busiest SRAM port
(:func:`.sram.port_cycles`). The last block of a Q block also normalises the
output (a fourth vector phase) unless the step writes a split's partial result.
A combine step (``k = 0``) merges one partial result, read from the activation
buffer, into the output accumulator on the vector unit.
"""

from __future__ import annotations

from math import ceil

from ..metrics.records import StepCost
from ..workload.attention import MASK_OPS, NORMALIZE_OPS, PARTIAL_EXTRA_VALUES, RESCALE_OPS, SCORE_OPS, AttentionSpec
from .array import tile_work
from .config import AcceleratorConfig, Dataflow
from .pe import pe_model
from .plan import TileStep
from .sram import port_cycles
from .vector import vector_cycles


class AttentionTimer:
    """Cycles and SRAM traffic of the steps of one fused attention op on one design (memoised per step shape).

    Parameters
    ----------
    accel:
        The design.
    spec:
        The attention (shape and precisions).
    dataflow:
        How both products are laid onto the array.
    """

    def __init__(self, accel: AcceleratorConfig, spec: AttentionSpec, dataflow: Dataflow):
        self.accel = accel
        self.spec = spec
        self.dataflow = dataflow
        pe = pe_model(accel.tile.pe_array.pe)
        self.rate = pe.macs_per_cycle(spec.kv_bits, spec.q_bits, spec.activation_format)
        self.os_factors = (pe.output_stationary_factors(spec.kv_bits, spec.q_bits, spec.activation_format)
                           if dataflow is Dataflow.OUTPUT_STATIONARY else None)
        self._memo: dict = {}

    def step(self, s: TileStep) -> StepCost:
        """The cost of step ``s``: a Q block against a key block, or (``k = 0``) a combine step."""
        if s.k == 0:
            return self.combine(s.m, s.a_bytes, s.kk == 0, s.normalize)
        return self.block(s.m, s.n, s.kk == 0, s.masked, s.normalize)

    def block(self, rows: int, keys: int, first: bool, masked: bool, normalize: bool) -> StepCost:
        """``rows`` query rows against ``keys`` keys; ``first``: the Q block's first key block (the
        accumulators start), ``masked``: the block straddles the causal diagonal, ``normalize``: the
        output is normalised after it."""
        key = ("block", rows, keys, first, masked, normalize)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        spec, tile = self.spec, self.accel.tile
        d, acc = spec.head_dim, tile.accumulator_bits
        a_buf, w_buf, o_buf = tile.activation_buffer, tile.weight_buffer, tile.output_buffer
        s_bytes = ceil(rows * keys * acc / 8)  # scores at the accumulator width
        p_bytes = ceil(rows * keys * spec.q_bits / 8)  # probabilities at the PV operand's width
        o_bytes = ceil(rows * d * acc / 8)  # the output accumulator
        k_bytes = ceil(keys * d * spec.kv_bits / 8)  # K (and, alike, V) of the block
        # 1. S = Q K^T
        qk = tile_work(rows, keys, d, tile.pe_array, self.dataflow, self.rate, self.os_factors)
        qk_a, qk_w = qk.a_passes * spec.q_bytes(rows), qk.w_passes * k_bytes
        qk_ports = (port_cycles(qk_a, a_buf), port_cycles(qk_w, w_buf), port_cycles(s_bytes, o_buf))
        # 2. online softmax: S read, P written in place, O rescaled (after the first block)
        ops = rows * keys * (SCORE_OPS + (MASK_OPS if masked else 0))
        sm_o = s_bytes + p_bytes
        if not first:
            ops += rows * (d + RESCALE_OPS)
            sm_o += 2 * o_bytes
        sm_vec = vector_cycles(ops, tile.vector)
        sm_port = port_cycles(sm_o, o_buf)
        # 3. O += P V
        pv = tile_work(rows, d, keys, tile.pe_array, self.dataflow, self.rate, self.os_factors)
        pv_p, pv_w = pv.a_passes * p_bytes, pv.w_passes * k_bytes
        pv_o_read = 0 if first else o_bytes
        pv_o_port = port_cycles(pv_p + pv_o_read + o_bytes, o_buf)
        pv_w_port = port_cycles(pv_w, w_buf)
        # 4. normalise the output (last block of a Q block, unless a partial result is written)
        norm_ops = rows * (d + NORMALIZE_OPS) if normalize else 0
        norm_vec = vector_cycles(norm_ops, tile.vector)
        norm_port = port_cycles(o_bytes, o_buf) if normalize else 0
        compute = (max(qk.cycles, *qk_ports) + max(sm_vec, sm_port) + max(pv.cycles, pv_w_port, pv_o_port)
                   + max(norm_vec, norm_port))
        cost = StepCost(
            compute_cycles=compute, array_cycles=qk.cycles + pv.cycles, folds=qk.folds + pv.folds,
            activation_port_cycles=qk_ports[0], weight_port_cycles=qk_ports[1] + pv_w_port,
            output_port_cycles=qk_ports[2] + sm_port + pv_o_port + norm_port,
            dequant_cycles=0, convert_cycles=0, convert_stall_cycles=0, dequant_elements=0,
            vector_cycles=sm_vec + norm_vec, vector_ops=ops + norm_ops,
            a_sram_read_bytes=qk_a, w_sram_read_bytes=qk_w + pv_w,
            o_sram_read_bytes=s_bytes + pv_p + pv_o_read + (o_bytes if not first else 0)
            + (o_bytes if normalize else 0),
            o_sram_write_bytes=s_bytes + p_bytes + o_bytes + (o_bytes if not first else 0))
        self._memo[key] = cost
        return cost

    def combine(self, rows: int, in_bytes: int, first: bool, normalize: bool) -> StepCost:
        """Merge one split's partial result of ``rows`` rows (``in_bytes`` from the activation buffer) into
        the output accumulator; ``first``: it starts the accumulator, ``normalize``: the last one."""
        key = ("combine", rows, in_bytes, first, normalize)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        spec, tile = self.spec, self.accel.tile
        d = spec.head_dim
        acc_bytes = ceil(rows * (d + PARTIAL_EXTRA_VALUES) * tile.accumulator_bits / 8)
        ops = 0 if first else rows * (d + RESCALE_OPS)
        if normalize:
            ops += rows * (d + NORMALIZE_OPS)
        o_read = 0 if first else acc_bytes
        vec = vector_cycles(ops, tile.vector)
        a_port = port_cycles(in_bytes, tile.activation_buffer)
        o_port = port_cycles(o_read + acc_bytes, tile.output_buffer)
        cost = StepCost(
            compute_cycles=max(vec, a_port, o_port), array_cycles=0, folds=0, activation_port_cycles=a_port,
            weight_port_cycles=0, output_port_cycles=o_port, dequant_cycles=0, convert_cycles=0,
            convert_stall_cycles=0, dequant_elements=0, vector_cycles=vec, vector_ops=ops,
            a_sram_read_bytes=in_bytes, w_sram_read_bytes=0, o_sram_read_bytes=o_read,
            o_sram_write_bytes=acc_bytes)
        self._memo[key] = cost
        return cost
