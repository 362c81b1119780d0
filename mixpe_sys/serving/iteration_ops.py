"""The ops of one serving iteration: a mix of prefill chunks and decode steps.

An iteration runs ``T`` new tokens from several sequences through every
decoder layer. Per layer, the linear layers and the token-wise vector ops
(norms, residual adds, FFN activation) run once, batched over all ``T``
tokens (``m = T``); the attention ops run once per sequence with that
sequence's own new tokens ``q`` and KV length (``batch = 1`` sequence)::

    add_norm_attn(T) -> qkv(T) -> [rope_kv_write(q_i), attention (q_i, kv_i)] for each
    sequence i -> o_proj(T) -> add_norm_ffn(T) -> ffn_up(T) -> act(T) -> ffn_down(T)

(``attn_qk, softmax, attn_pv`` in place of the fused ``attention`` with ``attention=unfused``)

then, after the last layer, the final add + norm and LM head for the sequences
that produce a token this iteration (a decode step, or the last chunk of a
prompt). The ops come from :func:`mixpe_sys.workload.transformer.layer_ops`
and :func:`~mixpe_sys.workload.transformer.head_ops`, so an iteration of one
sequence has exactly the ops of :func:`~mixpe_sys.sim.model.simulate_model`
with ``batch=1``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

from ..workload.attention import AttentionMode, attention_mode
from ..workload.models import ModelSpec
from ..workload.ops import Op, Phase
from ..workload.quant import QuantScheme
from ..workload.transformer import head_ops, layer_ops

ATTENTION_OPS = ("rope_kv_write", "kv_write", "attention", "attn_qk", "softmax", "attn_pv")
"""Ops of a layer that run per sequence (their cost depends on the sequence's ``q`` and KV length); a layer has
``rope_kv_write`` (RoPE models) or ``kv_write`` (learned positions), then the fused ``attention`` or the
unfused ``attn_qk, softmax, attn_pv``."""


class SeqWork(NamedTuple):
    """What one sequence does in an iteration.

    Attributes
    ----------
    q:
        New tokens processed (a prompt chunk, or 1 for a decode step).
    kv_len:
        Tokens attended to, the new ones included.
    emits:
        True when the sequence produces a token at the end of the iteration.
    """

    q: int
    kv_len: int
    emits: bool


def iteration_key(works: Sequence[SeqWork]) -> tuple[SeqWork, ...]:
    """Composition key of an iteration: its sequence works, sorted (order does not change the cost)."""
    return tuple(sorted(works))


class IterationOps:
    """Builds the op lists of iterations of ``model`` under quantization ``quant`` and attention mode
    ``attention`` (fused or unfused)."""

    def __init__(self, model: ModelSpec, quant: QuantScheme, attention: AttentionMode | str = AttentionMode.FUSED):
        self.model = model
        self.quant = quant
        self.attention = attention_mode(attention)
        template = self._layer(1, 1)
        names = [op.name for op in template]
        first = min(i for i, name in enumerate(names) if name in ATTENTION_OPS)
        per_sequence = sum(n in ATTENTION_OPS for n in names)
        if not all(name in ATTENTION_OPS for name in names[first:first + per_sequence]):
            raise RuntimeError(f"unexpected decoder layer op order {names}")
        self._split = first  # token ops before the attention block, then the rest

    def _layer(self, q_tokens: int, kv_len: int, phase: Phase = Phase.PREFILL) -> list[Op]:
        return layer_ops(self.model, self.quant, batch=1, q_tokens=q_tokens, kv_len=kv_len, phase=phase,
                         attention=self.attention)

    def token_ops(self, tokens: int) -> tuple[list[Op], list[Op]]:
        """One layer's ops batched over all ``tokens`` of the iteration: (before attention, after attention)."""
        ops = [op for op in self._layer(tokens, 1) if op.name not in ATTENTION_OPS]
        return ops[:self._split], ops[self._split:]

    def sequence_ops(self, q: int, kv_len: int) -> list[Op]:
        """One layer's attention ops of one sequence with ``q`` new tokens attending to ``kv_len`` tokens."""
        return [op for op in self._layer(q, kv_len) if op.name in ATTENTION_OPS]

    def head_ops(self, sequences: int) -> list[Op]:
        """Final norm and LM head for ``sequences`` sequences producing a token (empty for 0)."""
        if sequences < 1:
            return []
        return head_ops(self.model, self.quant, batch=sequences, phase=Phase.PREFILL)

    def layer(self, works: Sequence[SeqWork], layer: int = 0) -> list[Op]:
        """The ops of one decoder layer of the iteration, in program order."""
        before, after = self.token_ops(sum(w.q for w in works))
        ops = list(before)
        for w in works:
            ops += self.sequence_ops(w.q, w.kv_len)
        ops += after
        return ops if layer == 0 else [dataclasses.replace(op, layer=layer) for op in ops]

    def iteration(self, works: Sequence[SeqWork]) -> list[Op]:
        """Every op of the iteration: each decoder layer, then the head."""
        ops: list[Op] = []
        for layer in range(self.model.num_layers):
            ops += self.layer(works, layer)
        return ops + self.head_ops(sum(1 for w in works if w.emits))
