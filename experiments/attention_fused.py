"""Fused against unfused attention: Llama-2-7B prefill, and the GPU presets against FlashAttention-2.

Usage::

    python experiments/attention_fused.py OUTDIR [--designs mixpe-w4a8,a100-like,h100-like]
        [--prompts 512,2048,8192] [--quick]

1. Llama-2-7B prefill, batch 1, at each prompt length on each design (its own quantization): the
   attention kernels of one layer simulated in both modes (``attention`` fused; ``attn_qk``,
   ``softmax``, ``attn_pv`` unfused), each with the design's launch cost per kernel under CUDA-graph
   replay, times the 32 layers. 8192 tokens is beyond Llama-2's 4096-token context: the shapes are
   simulated as they are, without the context check of a model run.
2. The FlashAttention-2 benchmark setting (Dao, "FlashAttention-2: Faster Attention with Better
   Parallelism and Work Partitioning", arXiv:2307.08691, 2023, Sec. 4.1: A100 80GB SXM4, sequence
   lengths 512..16k with batch x sequence length = 16k tokens, hidden dimension 2048 = 16 heads of
   128, FP16/BF16), causal, forward pass, on ``a100-80gb-like`` (the part the paper measured) and the
   other GPU presets: throughput with the paper's FLOP count, ``4 seqlen^2 head_dim heads / 2``
   per sequence for a causal mask, over the op's device time (no launch cost, as kernel timings).
   The model reads K and V from DRAM once per Q block; on a GPU the Q blocks of one head run at once
   and find them in L2. ``tflops_dram_x8`` is the same op on the design with 8 x its DRAM bandwidth,
   which no longer limits it: the figure the model would give if K and V came from L2.

Writes ``llama_prefill_attention.csv``, ``fa2_setting.csv`` and ``attention.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pandas as pd

from mixpe_sys import load_design
from mixpe_sys.report import markdown_table
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.ops import Op, OpKind, Phase
from mixpe_sys.workload.quant import NumberFormat
from mixpe_sys.workload.transformer import layer_ops

DESIGNS = ("mixpe-w4a8", "a100-like", "h100-like")
PROMPTS = (512, 2048, 8192)
FA2_DESIGNS = ("a100-80gb-like", "a100-like", "h100-like")
FA2_SEQLENS = (512, 1024, 2048, 4096, 8192, 16384)
FA2_TOKENS = 16384  # batch x sequence length, Sec. 4.1
FA2_HEADS, FA2_HEAD_DIM = 16, 128  # hidden dimension 2048
UNFUSED = ("attn_qk", "softmax", "attn_pv")


def llama_rows(designs, prompts) -> pd.DataFrame:
    model = load_model("llama-2-7b")
    rows = []
    for name in designs:
        design = load_design(name)
        with CostCache(design, cache_dir=False) as cache:
            for prompt in prompts:
                row = {"design": name, "quant": design.native_quant.name, "prompt": prompt}
                for mode in ("fused", "unfused"):
                    ops = [op for op in layer_ops(model, design.native_quant, batch=1, q_tokens=prompt, kv_len=prompt,
                                                  phase=Phase.PREFILL, attention=mode)
                           if op.kind is OpKind.ATTENTION or op.name in UNFUSED]
                    costs = [cache.cost(op) for op in ops]
                    layers = model.num_layers
                    row[f"{mode}_ms"] = layers * sum(c.time_ns for c in costs) * 1e-6
                    row[f"{mode}_dram_gb"] = layers * sum(c.dram_read_bytes + c.dram_write_bytes for c in costs) / 1e9
                    if mode == "fused":
                        row["fused_bottleneck"] = costs[0].bottleneck
                        row["fused_macs"] = layers * costs[0].macs
                row["speedup"] = row["unfused_ms"] / row["fused_ms"]
                row["dram_ratio"] = row["unfused_dram_gb"] / row["fused_dram_gb"]
                rows.append(row)
                print(f"{name} {prompt}: fused {row['fused_ms']:.3f} ms, unfused {row['unfused_ms']:.3f} ms",
                      file=sys.stderr)
    return pd.DataFrame(rows)


def fa2_rows(designs, seqlens) -> pd.DataFrame:
    rows = []
    for name in designs:
        design = load_design(name)
        fast = dataclasses.replace(design, dram=dataclasses.replace(
            design.dram, bandwidth_bytes_per_s=8 * design.dram.bandwidth_bytes_per_s))
        with CostCache(design, cache_dir=False) as cache, CostCache(fast, cache_dir=False) as fast_cache:
            for s in seqlens:
                batch = FA2_TOKENS // s
                op = Op(name="attention", kind=OpKind.ATTENTION, m=s, n=s, k=FA2_HEAD_DIM,
                        batch=batch * FA2_HEADS, weight_bits=16, activation_bits=16, output_bits=16,
                        activation_format=NumberFormat.FP)
                c = cache.cost(op)
                flops = batch * 4 * s * s * FA2_HEAD_DIM * FA2_HEADS / 2  # the paper's causal count
                peak = design.num_pes * design.frequency_hz * 2  # FP16 FLOP/s (one MAC per PE per cycle)
                rows.append({"design": name, "seqlen": s, "batch": batch, "device_time_us": c.device_time_ns * 1e-3,
                             "tflops": flops / c.device_time_ns * 1e-3, "fraction_of_peak": flops / c.device_time_ns
                             * 1e9 / peak, "bottleneck": c.bottleneck,
                             "dram_gb": (c.dram_read_bytes + c.dram_write_bytes) / 1e9,
                             "tflops_dram_x8": flops / fast_cache.cost(op).device_time_ns * 1e-3})
                print(f"{name} seqlen {s}: {rows[-1]['tflops']:.0f} TFLOPs/s", file=sys.stderr)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--designs", default=",".join(DESIGNS))
    ap.add_argument("--prompts", default=",".join(map(str, PROMPTS)))
    ap.add_argument("--quick", action="store_true", help="prompt 128 only, FlashAttention-2 setting at 512 only")
    ap.add_argument("--fa2-only", action="store_true", help="only the FlashAttention-2 setting")
    args = ap.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    prompts = (128,) if args.quick else tuple(int(p) for p in args.prompts.split(","))
    llama = pd.DataFrame() if args.fa2_only else llama_rows(args.designs.split(","), prompts)
    fa2 = fa2_rows(FA2_DESIGNS, (512,) if args.quick else FA2_SEQLENS)
    if not args.fa2_only:
        llama.to_csv(args.outdir / "llama_prefill_attention.csv", index=False)
    fa2.to_csv(args.outdir / "fa2_setting.csv", index=False)
    text = "# Fused attention\n\n"
    if not args.fa2_only:
        text += ("## Llama-2-7B prefill, batch 1, attention kernels of all 32 layers\n\n" + markdown_table(llama)
                 + "\n\n")
    text += "## FlashAttention-2 benchmark setting (causal, forward, head dim 128)\n\n" + markdown_table(fa2) + "\n"
    (args.outdir / "attention.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
