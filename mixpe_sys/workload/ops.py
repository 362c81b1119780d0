"""Operators of a decoder layer, each knowing its MACs and bytes.

An :class:`Op` is one line of an operator trace. GEMM-like ops (linear
layers, attention ``QK^T`` and ``PV``, the LM head, the MixPE authors'
dequantization GEMMs) run on the PE arrays as ``batch`` x ``[m, k] x [k, n]``;
vector ops (softmax, norms, activations, residual adds, KV-cache writes, and
the fused kernels runtimes launch for them) run on the tiles' vector units
over ``elements`` elements; a fused attention op runs on both
(:mod:`.attention`). Every op is one kernel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace
from math import ceil
from typing import Iterable, Iterator

from ..errors import ConfigError
from .attention import AttentionSpec
from .gemm_spec import GemmSpec
from .quant import NumberFormat


class OpKind(str, enum.Enum):
    """What an op computes; decides which unit runs it."""

    LINEAR = "linear"  # activations x quantized weights (QKV, out-proj, FFN, LM head)
    DEQUANT_GEMM = "dequant_gemm"  # the MixPE authors' dequantization modelled as a GEMM
    ATTN_QK = "attn_qk"  # scores = Q K^T against the KV cache
    ATTN_PV = "attn_pv"  # context = P V against the KV cache
    SOFTMAX = "softmax"
    NORM = "norm"
    ACTIVATION = "activation"
    RESIDUAL = "residual"
    KV_WRITE = "kv_write"
    ADD_NORM = "add_norm"  # residual add fused with the next norm (one kernel, e.g. vLLM's fused_add_rms_norm)
    ROPE_KV_WRITE = "rope_kv_write"  # rotary embedding of q and k fused with the KV-cache write (one kernel)
    ATTENTION = "attention"  # fused attention: Q K^T, online softmax and P V in one kernel (mixpe_sys.workload.attention)

    @property
    def on_array(self) -> bool:
        """True for ops that run on the PE arrays."""
        return self in _ARRAY_KINDS


_ARRAY_KINDS = {OpKind.LINEAR, OpKind.DEQUANT_GEMM, OpKind.ATTN_QK, OpKind.ATTN_PV}


class Phase(str, enum.Enum):
    """Inference phase an op belongs to."""

    PREFILL = "prefill"
    DECODE = "decode"


@dataclass(frozen=True, slots=True)
class Op:
    """One operator instance (one trace line).

    Attributes
    ----------
    name:
        Label, e.g. ``qkv``, ``ffn_down``, ``attn_qk``.
    kind:
        The operator kind.
    phase, layer, step:
        Where it sits: prefill or decode, decoder layer (-1 = after the last
        layer, e.g. the LM head), decode step (0 in prefill).
    m, n, k, batch:
        GEMM sizes (array ops): ``batch`` x ``[m, k] x [k, n]``. Fused attention: ``m`` query rows
        (new tokens x ``query_group``), ``n`` keys, ``k`` the head width, ``batch`` (sequence, KV head) pairs.
    elements:
        Elements processed (vector ops).
    ops_per_element:
        Vector-unit operations per element (vector ops).
    read_bytes, write_bytes:
        DRAM bytes read and written (vector ops; array ops derive theirs).
    weight_bits, activation_bits, output_bits, activation_format, group_size, scale_bits, zero_bits:
        Operand precisions (array ops); ``weight`` is the stationary operand
        (weights, or the K/V cache for attention).
    query_group:
        Fused attention: query heads per KV head, packed into the rows ``m``.
    """

    name: str
    kind: OpKind
    phase: Phase = Phase.PREFILL
    layer: int = 0
    step: int = 0
    m: int = 0
    n: int = 0
    k: int = 0
    batch: int = 1
    elements: int = 0
    ops_per_element: int = 1
    read_bytes: int = 0
    write_bytes: int = 0
    weight_bits: int = 0
    activation_bits: int = 0
    output_bits: int = 0
    activation_format: NumberFormat = NumberFormat.INT
    group_size: int = 0
    scale_bits: int = 0
    zero_bits: int = 0
    query_group: int = 1

    def cost_key(self) -> tuple:
        """Everything that decides the op's cost (not its name or place): equal keys, equal cost."""
        return (self.kind.on_array, self.m, self.n, self.k, self.batch, self.elements, self.ops_per_element,
                self.read_bytes, self.write_bytes, self.weight_bits, self.activation_bits, self.output_bits,
                self.activation_format, self.group_size, self.scale_bits, self.zero_bits,
                self.kind is OpKind.ATTENTION, self.query_group)

    def gemm_spec(self) -> GemmSpec:
        """The GEMM this op runs on the arrays."""
        return GemmSpec(m=self.m, n=self.n, k=self.k, batch=self.batch, weight_bits=self.weight_bits,
                        activation_bits=self.activation_bits, activation_format=self.activation_format,
                        output_bits=self.output_bits, group_size=self.group_size,
                        scale_bits=self.scale_bits, zero_bits=self.zero_bits)

    def attention_spec(self) -> AttentionSpec:
        """The fused attention this op computes (ATTENTION ops)."""
        if self.query_group <= 0 or self.m % self.query_group:
            raise ConfigError(f"field 'query_group': {self.query_group} must divide the {self.m} query rows (m)")
        return AttentionSpec(instances=self.batch, q_tokens=self.m // self.query_group, group=self.query_group,
                             kv_len=self.n, head_dim=self.k, q_bits=self.activation_bits, kv_bits=self.weight_bits,
                             out_bits=self.output_bits, activation_format=self.activation_format)

    @property
    def macs(self) -> int:
        """Multiply-accumulates (0 for vector ops; the unmasked scores' for fused attention)."""
        if self.kind is OpKind.ATTENTION:
            return self.attention_spec().macs
        return self.batch * self.m * self.n * self.k if self.kind.on_array else 0

    def dram_bytes(self) -> tuple[int, int]:
        """Compulsory (read, write) DRAM bytes."""
        if self.kind is OpKind.ATTENTION:
            return self.attention_spec().compulsory_bytes()
        if self.kind.on_array:
            return self.gemm_spec().compulsory_bytes()
        return self.read_bytes, self.write_bytes


OP_FIELDS = tuple(f.name for f in fields(Op))


@dataclass(frozen=True, slots=True)
class OpBlock:
    """One layer's ops repeated over ``layers`` consecutive layers.

    ``ops`` are the first copy's ops in program order; copy ``i`` (0-based) is
    the same ops with ``layer`` increased by ``i``. A run of identical
    decoder layers is one block, so the engine handles it with work that does
    not grow with the layer count.
    """

    ops: tuple[Op, ...]
    layers: int = 1

    def __len__(self) -> int:
        """Ops in the block (all copies)."""
        return len(self.ops) * self.layers

    def expand(self) -> Iterator[Op]:
        """Every op of the block in program order."""
        yield from self.ops
        for i in range(1, self.layers):
            for op in self.ops:
                yield replace(op, layer=op.layer + i)


def blocks_of(ops: Iterable[Op]) -> Iterator[OpBlock]:
    """A flat op stream as blocks of one layer each: consecutive ops with equal (phase, step, layer)."""
    group: list[Op] = []
    where = None
    for op in ops:
        here = (op.phase, op.step, op.layer)
        if here != where and group:
            yield OpBlock(tuple(group))
            group = []
        where = here
        group.append(op)
    if group:
        yield OpBlock(tuple(group))


def vector_op(name: str, kind: OpKind, *, elements: int, read_bits_per_element: int,
              write_bits_per_element: int, ops_per_element: int, **where) -> Op:
    """A vector op over ``elements`` elements reading/writing the given bits per element."""
    return Op(name=name, kind=kind, elements=elements, ops_per_element=ops_per_element,
              read_bytes=ceil(elements * read_bits_per_element / 8),
              write_bytes=ceil(elements * write_bits_per_element / 8), **where)
