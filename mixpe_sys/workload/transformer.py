"""Operator lists of decoder-only transformers: prefill and decode, full or the MixPE authors' workload.

Full workload, per layer (``T = batch x q`` tokens, ``L`` the KV length), one op per kernel as
serving runtimes (vLLM, TensorRT-LLM) launch them::

    add_norm_attn -> qkv -> rope_kv_write -> attention -> o_proj
    -> add_norm_ffn -> ffn_up (gate+up fused when gated) -> act -> ffn_down

with ``attention`` one fused (FlashAttention-style) kernel (:mod:`.attention`), or, with
``attention=unfused``, three kernels whose scores go through DRAM::

    ... -> rope_kv_write -> attn_qk -> softmax -> attn_pv -> o_proj -> ...

then ``add_norm_final`` and the LM head for the last token of each sequence. The fused kernels:

- ``add_norm_*``: a residual add fused with the next norm (vLLM's ``fused_add_rms_norm``): it
  reads the residual stream and the previous sub-layer's output and writes the new residual
  and the normalised GEMM input. ``add_norm_attn`` of a layer takes the previous layer's FFN
  output (every layer is costed alike, layer 0's embedding input included) and
  ``add_norm_final`` the last layer's.
- ``rope_kv_write``: the rotary embedding of q and k fused with the write of K and V into the
  cache (``kv_write`` without rotation for models with learned positions).
- ``act``: for a gated FFN, ``silu(gate) * up`` in one kernel (vLLM's ``silu_and_mul``).

The residual stream is FP16; GEMM inputs are at the scheme's activation bits.
Unfused prefill attention computes the full ``P x P`` score matrix (no causal
skipping); fused attention skips the key blocks above the causal diagonal.
Prefill produces the first output token; decode step ``s``
(1..G-1) produces token ``s + 1`` against ``L = P + s`` cached tokens.
"""

from __future__ import annotations

from math import ceil
from typing import Iterator

from .model_spec import PositionEncoding
from .paper import DequantGemmPlacement, PaperProfile
from .attention import AttentionMode, attention_mode
from .models import ModelSpec
from .ops import Op, OpBlock, OpKind, Phase, vector_op
from .quant import NumberFormat, QuantScheme

STREAM_BITS = 16  # residual stream and GEMM outputs (FP16)
PAPER_OUTPUT_BITS = 16  # the authors' simulator writes every GEMM output at 16 bits (oprec = 16)
OPS_PER_LAYER = 11  # kernels per decoder layer with unfused attention (see the module docstring)
FUSED_OPS_PER_LAYER = 9  # kernels per decoder layer with fused attention
HEAD_OPS = 2  # add_norm_final and lm_head
ADD_NORM_OPS_PER_ELEMENT = 5  # one add, then the norm's four (square, sum, scale, multiply by the weight)
ROPE_KV_OPS_PER_ELEMENT = 4  # rotation (two multiplies, one add, the cos/sin fetch) or the cache write's conversion


def _add_norm(name: str, elements: int, out_bits: int, **where) -> Op:
    """Residual add fused with a norm: reads residual + sub-layer output, writes the new residual and the normed input."""
    return vector_op(name, OpKind.ADD_NORM, elements=elements, read_bits_per_element=2 * STREAM_BITS,
                     write_bits_per_element=STREAM_BITS + out_bits, ops_per_element=ADD_NORM_OPS_PER_ELEMENT,
                     **where)


def _kv_write(model: ModelSpec, q: QuantScheme, t: int, **where) -> Op:
    """The KV-cache write of ``t`` tokens, with the rotary embedding of q and k fused in for RoPE models."""
    kv = t * 2 * model.kv_dim
    if model.position_encoding is not PositionEncoding.ROPE:
        return vector_op("kv_write", OpKind.KV_WRITE, elements=kv, read_bits_per_element=STREAM_BITS,
                         write_bits_per_element=q.kv_bits, ops_per_element=ROPE_KV_OPS_PER_ELEMENT, **where)
    qe = t * model.q_dim  # q is rotated in place; k is rotated on its way into the cache
    return Op(name="rope_kv_write", kind=OpKind.ROPE_KV_WRITE, elements=qe + kv,
              ops_per_element=ROPE_KV_OPS_PER_ELEMENT, read_bytes=ceil((qe + kv) * STREAM_BITS / 8),
              write_bytes=ceil((qe * STREAM_BITS + kv * q.kv_bits) / 8), **where)


def _linear(name: str, m: int, n: int, k: int, q: QuantScheme, out_bits: int, **where) -> Op:
    grouped = q.quantized_weights
    return Op(name=name, kind=OpKind.LINEAR, m=m, n=n, k=k, weight_bits=q.weight_bits,
              activation_bits=q.activation_bits, output_bits=out_bits, activation_format=q.activation_format,
              group_size=q.group_size if grouped else 0, scale_bits=q.scale_bits if grouped else 0,
              zero_bits=q.zero_bits if grouped else 0, **where)


def ops_per_layer(attention: AttentionMode | str = AttentionMode.FUSED) -> int:
    """Kernels per decoder layer under ``attention`` (fused or unfused)."""
    return FUSED_OPS_PER_LAYER if attention_mode(attention) is AttentionMode.FUSED else OPS_PER_LAYER


def layer_ops(model: ModelSpec, q: QuantScheme, *, batch: int, q_tokens: int, kv_len: int,
              phase: Phase, layer: int = 0, step: int = 0,
              attention: AttentionMode | str = AttentionMode.FUSED) -> list[Op]:
    """The ops of one decoder layer for ``batch`` sequences of ``q_tokens`` new tokens each.

    Parameters
    ----------
    model, q:
        Model shape and quantization scheme.
    batch, q_tokens, kv_len:
        Sequences, new tokens per sequence, and cached tokens attended to (incl. the new ones).
    phase, layer, step:
        Labels copied into every op.
    attention:
        ``fused`` (one attention kernel, default) or ``unfused`` (``attn_qk``, ``softmax``, ``attn_pv``).
    """
    where = dict(phase=phase, layer=layer, step=step)
    t = batch * q_tokens
    h, f, d = model.hidden_size, model.intermediate_size, model.head_dim
    heads, kv_heads = model.num_heads, model.num_kv_heads
    group = heads // kv_heads
    a = q.activation_bits
    attn = dict(batch=batch * kv_heads, weight_bits=q.kv_bits, activation_bits=a,
                activation_format=q.activation_format, **where)
    ops = [
        _add_norm("add_norm_attn", t * h, a, **where),
        _linear("qkv", t, model.q_dim + 2 * model.kv_dim, h, q, STREAM_BITS, **where),
        _kv_write(model, q, t, **where),
        *_attention(attention_mode(attention), batch=batch, heads=heads, group=group, q_tokens=q_tokens,
                    kv_len=kv_len, d=d, a=a, attn=attn, where=where),
        _linear("o_proj", t, h, model.q_dim, q, STREAM_BITS, **where),
        _add_norm("add_norm_ffn", t * h, a, **where),
        _linear("ffn_up", t, 2 * f if model.gated_ffn else f, h, q, STREAM_BITS, **where),
        vector_op("act", OpKind.ACTIVATION, elements=t * f,
                  read_bits_per_element=(2 if model.gated_ffn else 1) * STREAM_BITS,
                  write_bits_per_element=a, ops_per_element=5 if model.gated_ffn else 1, **where),
        _linear("ffn_down", t, h, f, q, STREAM_BITS, **where),
    ]
    assert len(ops) == ops_per_layer(attention)
    return ops


def _attention(mode: AttentionMode, *, batch, heads, group, q_tokens, kv_len, d, a, attn, where) -> list[Op]:
    """The attention kernels of a layer: one fused op, or QK^T, softmax and PV."""
    if mode is AttentionMode.FUSED:
        return [Op(name="attention", kind=OpKind.ATTENTION, m=q_tokens * group, n=kv_len, k=d, output_bits=a,
                   query_group=group, **attn)]
    return [
        Op(name="attn_qk", kind=OpKind.ATTN_QK, m=q_tokens * group, n=kv_len, k=d, output_bits=STREAM_BITS, **attn),
        vector_op("softmax", OpKind.SOFTMAX, elements=batch * heads * q_tokens * kv_len,
                  read_bits_per_element=STREAM_BITS, write_bits_per_element=a, ops_per_element=5, **where),
        Op(name="attn_pv", kind=OpKind.ATTN_PV, m=q_tokens * group, n=d, k=kv_len, output_bits=a, **attn)]


def head_ops(model: ModelSpec, q: QuantScheme, *, batch: int, phase: Phase, step: int = 0) -> list[Op]:
    """The last layer's residual add fused with the final norm, and the LM head, for the last token of each
    of ``batch`` sequences (layer = -1)."""
    where = dict(phase=phase, layer=-1, step=step)
    h = model.hidden_size
    return [_add_norm("add_norm_final", batch * h, q.activation_bits, **where),
            _linear("lm_head", batch, model.vocab_size, h, q, STREAM_BITS, **where)]


def full_workload(model: ModelSpec, q: QuantScheme, *, batch: int, prompt: int, generate: int,
                  attention: AttentionMode | str = AttentionMode.FUSED) -> Iterator[Op]:
    """Every op of prefilling ``prompt`` tokens and generating ``generate`` tokens for ``batch`` sequences."""
    for block in full_workload_blocks(model, q, batch=batch, prompt=prompt, generate=generate, attention=attention):
        yield from block.expand()


def full_workload_blocks(model: ModelSpec, q: QuantScheme, *, batch: int, prompt: int, generate: int,
                         attention: AttentionMode | str = AttentionMode.FUSED) -> Iterator[OpBlock]:
    """:func:`full_workload` as blocks: per step, one block of ``num_layers`` identical layers, then the head."""
    yield from _phase(model, q, batch=batch, q_tokens=prompt, kv_len=prompt, phase=Phase.PREFILL, step=0,
                      attention=attention)
    for s in range(1, generate):
        yield from _phase(model, q, batch=batch, q_tokens=1, kv_len=prompt + s, phase=Phase.DECODE, step=s,
                          attention=attention)


def _phase(model, q, *, batch, q_tokens, kv_len, phase, step, attention) -> Iterator[OpBlock]:
    template = layer_ops(model, q, batch=batch, q_tokens=q_tokens, kv_len=kv_len, phase=phase, step=step,
                         attention=attention)
    yield OpBlock(tuple(template), model.num_layers)
    yield OpBlock(tuple(head_ops(model, q, batch=batch, phase=phase, step=step)))


def paper_workload(model: ModelSpec, prof: PaperProfile, *, batch: int = 64, group_size: int = 128) -> Iterator[Op]:
    """The MixPE authors' workload: linear layers only, ``batch`` x 1 token, with their dequant GEMMs.

    Per layer: QKV (h -> 3h), output projection (h -> h), FFN1 (h -> 4h) and
    FFN2 (4h -> h), the FFN taken as 4h whatever the model's width. Baselines
    get a dequant GEMM ``[B x K] x [K x N/8]`` before each, MixPE one of
    ``[B x K/8] x [K/8 x N/g]`` after each, at the design's high precision, with
    ``g = group_size``, the design's group size (the authors fix ``g = 128``; per-channel
    scales, group 0, count as one group of K). The authors' baseline dequant
    GEMM does not depend on the group size: there a baseline's group size
    changes only its fidelity (SNR), not its time or energy.
    """
    h = model.hidden_size
    shapes = (("qkv", h, 3 * h), ("o_proj", h, h), ("ffn1", h, 4 * h), ("ffn2", 4 * h, h))
    fmt = NumberFormat.INT
    for layer in range(model.num_layers):
        where = dict(phase=Phase.DECODE, layer=layer, step=0)
        for name, k, n in shapes:
            wb, ab = prof.weight_bits, prof.activation_bits
            for ov in prof.overrides:
                if layer >= ov.layer_offset and (layer - ov.layer_offset) % ov.layer_period == 0 \
                        and (not ov.ops or name in ov.ops):
                    wb, ab = ov.weight_bits, ov.activation_bits
            db = prof.dequant_bits
            main = Op(name=name, kind=OpKind.LINEAR, m=batch, n=n, k=k, weight_bits=wb, activation_bits=ab,
                      output_bits=PAPER_OUTPUT_BITS, activation_format=fmt, **where)
            if prof.dequant_gemm is DequantGemmPlacement.BEFORE:
                dq = Op(name=f"{name}_dequant", kind=OpKind.DEQUANT_GEMM, m=batch, n=max(1, n // 8), k=k,
                        weight_bits=db, activation_bits=db, output_bits=PAPER_OUTPUT_BITS, activation_format=fmt,
                        **where)
                yield dq
                yield main
            else:
                group = group_size or k
                dq = Op(name=f"{name}_dequant", kind=OpKind.DEQUANT_GEMM, m=batch, n=max(1, n // group),
                        k=max(1, k // 8), weight_bits=db, activation_bits=db, output_bits=PAPER_OUTPUT_BITS,
                        activation_format=fmt, **where)
                yield main
                yield dq
