"""Fused (FlashAttention-style) attention: the run option, the op's shape, and its online-softmax work.

A fused attention op computes ``softmax(Q K^T / sqrt(d)) V`` of ``instances`` =
sequences x KV heads without writing the scores to DRAM: each Q block stays in
a tile while the K and V blocks stream past it (Dao, "FlashAttention-2: Faster
Attention with Better Parallelism and Work Partitioning", 2023, Algorithm 1).
The ``group`` query heads that share one KV head are packed into the rows of
one instance (token-major: row ``r`` is token ``r // group``), so K and V are
streamed once for the whole group.

Causal masking: the ``q_tokens`` new tokens are the last ``q_tokens`` of the
``kv_len`` keys, and new token ``t`` attends to the first ``kv_len - q_tokens +
t + 1`` keys. :attr:`AttentionSpec.macs` counts only those (unmasked) scores:
for a prompt of ``P`` tokens that is ``P (P + 1) / 2`` scores per row group,
about half of the full ``P x P``. The hardware computes whole key blocks, so a
block straddling the diagonal is computed in full and masked (its masked
entries cost array cycles and one vector op each, but are not counted as MACs);
blocks entirely above the diagonal are skipped.

Without the mask (``causal=False``, e.g. an encoder, or the non-causal benchmarks of
fused-attention kernels) every row attends to all ``kv_len`` keys: ``q_tokens x kv_len``
scores per row group, no block is masked and none is skipped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from math import ceil

from ..errors import ConfigError, enum_choice
from .gemm_spec import GemmSpec
from .quant import NumberFormat

#: Vector-unit operations per score element of the online softmax: the running row maximum
#: (compare), the scaled subtraction of the maximum (one FMA: FlashAttention-2 folds 1/sqrt(d)
#: and log2(e) into it), exp2, the add into the running row sum, and the conversion of P to
#: the PV operand's precision (FlashAttention-2, Algorithm 1 lines 8-10).
SCORE_OPS = 5
#: Extra vector operations per score element of a block that straddles the causal diagonal
#: (compare the key index with the row's limit and select -inf).
MASK_OPS = 1
#: Per row, each key block after the first: the new maximum (compare), the rescale factor
#: exp(m_old - m_new) (subtract, exp) and the row sum's update (FMA), plus ``head_dim``
#: multiplies rescaling the output accumulator (Algorithm 1 line 10). The same count merges
#: one partial result into another when a split decode is combined.
RESCALE_OPS = 4
#: Per row at the end: the reciprocal of the row sum, plus ``head_dim`` multiplies (Algorithm 1 line 12).
NORMALIZE_OPS = 1
#: Values a split's partial result keeps per row besides the ``head_dim`` outputs: the row maximum and sum.
PARTIAL_EXTRA_VALUES = 2


class AttentionMode(str, enum.Enum):
    """How a run computes attention."""

    FUSED = "fused"  # one kernel per layer: Q stationary, K/V streamed, online softmax on the tile
    UNFUSED = "unfused"  # attn_qk, softmax, attn_pv as three kernels, the scores through DRAM


def attention_mode(value: AttentionMode | str) -> AttentionMode:
    """``value`` as an :class:`AttentionMode` (ConfigError naming the field if it names none)."""
    return enum_choice(AttentionMode, value, "attention", "attention mode")


@dataclass(frozen=True, kw_only=True)
class AttentionSpec:
    """The shape and precisions of one fused attention op.

    Attributes
    ----------
    instances:
        Independent (sequence, KV head) pairs.
    q_tokens:
        New tokens per sequence (the prompt in prefill, 1 in decode).
    group:
        Query heads per KV head (1 for multi-head attention).
    kv_len:
        Keys attended to, the new tokens included.
    head_dim:
        Width of one head (elements).
    q_bits, kv_bits, out_bits:
        Bits per element of Q (and of P in the PV product), of the K/V cache, and of the output.
    activation_format:
        ``int`` or ``fp`` Q and P.
    causal:
        New token ``t`` attends only to the keys up to itself (True), or every row to all
        ``kv_len`` keys (False).
    """

    instances: int
    q_tokens: int
    group: int
    kv_len: int
    head_dim: int
    q_bits: int
    kv_bits: int
    out_bits: int
    activation_format: NumberFormat = NumberFormat.FP
    causal: bool = True

    def __post_init__(self) -> None:
        for name in ("instances", "q_tokens", "group", "kv_len", "head_dim", "q_bits", "kv_bits", "out_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"field '{name}': must be a positive integer, got {value!r}")
        if not isinstance(self.causal, bool):
            raise ConfigError(f"field 'causal': must be true or false, got {self.causal!r}")
        if self.causal and self.q_tokens > self.kv_len:
            raise ConfigError(f"field 'kv_len': {self.kv_len} keys cannot hold the {self.q_tokens} new tokens")

    @property
    def rows(self) -> int:
        """Query rows of one instance: new tokens x query heads per KV head."""
        return self.q_tokens * self.group

    def keys_for_row(self, row: int) -> int:
        """Keys row ``row`` attends to (all ``kv_len`` without the causal mask)."""
        if not self.causal:
            return self.kv_len
        return self.kv_len - self.q_tokens + row // self.group + 1

    @property
    def scores(self) -> int:
        """Unmasked score entries of all instances."""
        if not self.causal:
            return self.instances * self.group * self.q_tokens * self.kv_len
        q, past = self.q_tokens, self.kv_len - self.q_tokens
        return self.instances * self.group * (q * past + q * (q + 1) // 2)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the unmasked scores: ``head_dim`` for Q K^T and ``head_dim`` for P V each."""
        return 2 * self.head_dim * self.scores

    def q_bytes(self, rows: int) -> int:
        """Bytes of ``rows`` rows of Q."""
        return ceil(rows * self.head_dim * self.q_bits / 8)

    def kv_bytes(self, keys: int) -> int:
        """Bytes of the K and V rows of ``keys`` keys."""
        return 2 * ceil(keys * self.head_dim * self.kv_bits / 8)

    def out_bytes(self, rows: int) -> int:
        """Bytes of ``rows`` output rows."""
        return ceil(rows * self.head_dim * self.out_bits / 8)

    def partial_bytes(self, rows: int, accumulator_bits: int) -> int:
        """Bytes of a split's partial result of ``rows`` rows: the unnormalised outputs, row max and row sum."""
        return ceil(rows * (self.head_dim + PARTIAL_EXTRA_VALUES) * accumulator_bits / 8)

    def compulsory_bytes(self) -> tuple[int, int]:
        """(DRAM read, write) bytes if Q, K and V are read once and the output written once."""
        per = self.q_bytes(self.rows) + self.kv_bytes(self.kv_len)
        return self.instances * per, self.instances * self.out_bytes(self.rows)

    def gemm_spec(self) -> GemmSpec:
        """The operand precisions of both products (Q K^T and P V), as the PE array sees them: K and V are
        the stationary ("weight") operand, Q and P the streaming one."""
        return GemmSpec(m=self.rows, n=self.kv_len, k=self.head_dim, batch=self.instances, weight_bits=self.kv_bits,
                        activation_bits=self.q_bits, activation_format=self.activation_format,
                        output_bits=self.out_bits, group_size=0)
