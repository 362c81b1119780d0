"""End-to-end sanity of the GPU presets: Llama-2-7B decode TPOT against weight bytes over HBM bandwidth,
and a 2048-token prefill against the compute bound.

Usage::

    python experiments/gpu_e2e.py OUTDIR [--designs a100-like,a100-80gb-like,h100-like,h200-like] [--quick]

Decode: Llama-2-7B, batch 1, FP16, a short prompt, kernels replayed from CUDA graphs
(``launch="graph"``); TPOT is the mean decode-step time. Its bound is the weight bytes
(every parameter once, FP16) over the peak HBM bandwidth; real runtimes reach roughly
1.2-1.4 x that bound. On ``a100-80gb-like`` the run is also compared with gpt-fast's
published batch-1 tokens/s on an A100 80 GB (``experiments/data/gptfast_a100_decode.csv``),
at FP16 and at INT4 weight-only with groups of 32 (BF16 scale and zero per group).

Prefill: 2048 tokens, batch 1, FP16, graph launch. Its compute bound is the run's MACs
(every op on the tensor cores, attention included) over the peak FP16 MAC rate.

Writes ``e2e_decode.csv``, ``e2e_gptfast.csv``, ``e2e_prefill.csv`` and ``e2e.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from mixpe_sys import load_design, simulate
from mixpe_sys.measurements import read_measurements
from mixpe_sys.report import markdown_table
from mixpe_sys.serving.kv_cache import weight_bytes
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.quant import QuantScheme

DESIGNS: tuple[str, ...] = ("a100-like", "a100-80gb-like", "h100-like", "h200-like")
MODEL = "llama-2-7b"
DECODE_PROMPT = 128
PREFILL_TOKENS = 2048
GPTFAST = Path(__file__).resolve().parent / "data" / "gptfast_a100_decode.csv"
#: gpt-fast's int4 path (torch._weight_int4pack_mm): groups of 32, a BF16 scale and a BF16 zero per group.
GPTFAST_QUANTS = {"base": QuantScheme.parse("W16A16"),
                  "int4_g32": QuantScheme.parse("W4A16", group_size=32, scale_bits=16, zero_bits=16)}


def _peak_macs_per_s(design) -> float:
    return design.num_pes * design.frequency_hz  # one FP16 MAC per PE per cycle


def decode_rows(designs: Sequence[str], prompt: int = DECODE_PROMPT, workers: int = 1) -> pd.DataFrame:
    model = load_model(MODEL)
    fp16 = QuantScheme.parse("W16A16")
    rows = []
    for name in designs:
        d = load_design(name)
        r = simulate(model, d, batch=1, prompt=prompt, generate=3, quant=fp16, progress=False, workers=workers)
        dec = r.ops[r.ops.phase == "decode"]
        steps = dec.step.nunique()
        tpot = r.to_dict()["time_per_output_token_s"]
        bound = weight_bytes(model, fp16) / d.dram.bandwidth_bytes_per_s
        by = lambda kinds: float(dec[dec.kind.isin(kinds)].time_s.sum()) / steps  # noqa: E731
        launch = d.launch.graph_launch_ns * 1e-9 * len(dec) / steps if d.launch else 0.0
        rows.append({"design": name, "hbm_tb_per_s": d.dram.bandwidth_bytes_per_s / 1e12,
                     "weight_gb": weight_bytes(model, fp16) / 1e9, "tpot_ms": tpot * 1e3,
                     "bound_ms": bound * 1e3, "tpot_over_bound": tpot / bound,
                     "linear_ms": by(["linear"]) * 1e3, "attention_ms": by(["attn_qk", "attn_pv", "attention"]) * 1e3,
                     "vector_ms": by(["add_norm", "rope_kv_write", "kv_write", "softmax", "activation"]) * 1e3,
                     "launch_ms": launch * 1e3, "kernels_per_token": len(dec) // steps})
    return pd.DataFrame(rows)


def gptfast_rows(design_name: str = "a100-80gb-like", workers: int = 1) -> pd.DataFrame:
    _, measured = read_measurements(GPTFAST, {"model": str, "technique": str, "tokens_per_s": float})
    model = load_model(MODEL)
    d = load_design(design_name)
    rows = []
    for r in measured.itertuples():
        q = GPTFAST_QUANTS[r.technique]
        sim = simulate(model, d, batch=1, prompt=8, generate=3, quant=q, progress=False, workers=workers)
        tpot = sim.to_dict()["time_per_output_token_s"]
        measured_ms = 1e3 / float(r.tokens_per_s)
        rows.append({"design": design_name, "technique": r.technique, "quant": q.name, "group_size": q.group_size,
                     "measured_tpot_ms": measured_ms, "simulated_tpot_ms": tpot * 1e3,
                     "error_pct": 100 * (tpot * 1e3 - measured_ms) / measured_ms,
                     "bound_ms": weight_bytes(model, q) / d.dram.bandwidth_bytes_per_s * 1e3})
    return pd.DataFrame(rows)


def prefill_rows(designs: Sequence[str], tokens: int = PREFILL_TOKENS, workers: int = 1) -> pd.DataFrame:
    model = load_model(MODEL)
    fp16 = QuantScheme.parse("W16A16")
    rows = []
    for name in designs:
        d = load_design(name)
        r = simulate(model, d, batch=1, prompt=tokens, generate=1, quant=fp16, progress=False, workers=workers)
        pre = r.ops[r.ops.phase == "prefill"]
        t = float(pre.time_s.sum())
        macs = int(pre.macs.sum())
        bound = macs / _peak_macs_per_s(d)
        lin = pre[pre.kind == "linear"]
        att = pre[pre.kind.isin(["attn_qk", "attn_pv", "attention"])]
        rows.append({"design": name, "prefill_ms": t * 1e3, "compute_bound_ms": bound * 1e3,
                     "prefill_over_bound": t / bound,
                     "linear_ms": float(lin.time_s.sum()) * 1e3,
                     "linear_bound_ms": int(lin.macs.sum()) / _peak_macs_per_s(d) * 1e3,
                     "attention_ms": float(att.time_s.sum()) * 1e3,
                     "attention_bound_ms": int(att.macs.sum()) / _peak_macs_per_s(d) * 1e3,
                     "other_ms": (t - float(lin.time_s.sum()) - float(att.time_s.sum())) * 1e3,
                     "achieved_tflops": 2 * macs / t / 1e12})
    return pd.DataFrame(rows)


def run(outdir: Path, designs: Sequence[str] = DESIGNS, quick: bool = False, workers: int = 1) -> dict:
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dec = decode_rows(designs, prompt=16 if quick else DECODE_PROMPT, workers=workers)
    gf = gptfast_rows(workers=workers) if not quick else pd.DataFrame()
    pre = prefill_rows(designs, tokens=64 if quick else PREFILL_TOKENS, workers=workers)
    wall = time.perf_counter() - start
    dec.to_csv(outdir / "e2e_decode.csv", index=False)
    gf.to_csv(outdir / "e2e_gptfast.csv", index=False)
    pre.to_csv(outdir / "e2e_prefill.csv", index=False)
    md = ["# GPU presets end to end: Llama-2-7B", "",
          f"Regenerate with `python experiments/gpu_e2e.py OUTDIR`. FP16, batch 1, graph launch. "
          f"Decode after a {DECODE_PROMPT if not quick else 16}-token prompt; bound = weight bytes / peak HBM "
          "bandwidth (real runtimes reach about 1.2-1.4 x).", "", markdown_table(dec.round(3)), ""]
    if len(gf):
        md += ["gpt-fast on an A100 80 GB (batch 1, CUDA graphs; experiments/data/gptfast_a100_decode.csv) "
               "against `a100-80gb-like`:", "", markdown_table(gf.round(3)), ""]
    md += [f"Prefill of {PREFILL_TOKENS if not quick else 64} tokens; compute bound = MACs / peak FP16 MAC rate:",
           "", markdown_table(pre.round(3)), "", f"Simulation wall time: {wall:.0f} s.", ""]
    (outdir / "e2e.md").write_text("\n".join(md), encoding="utf-8")
    return {"decode": dec, "gptfast": gf, "prefill": pre, "wall_s": wall,
            "files": [outdir / n for n in ("e2e_decode.csv", "e2e_gptfast.csv", "e2e_prefill.csv", "e2e.md")]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--designs", type=lambda t: tuple(t.split(",")), default=DESIGNS)
    parser.add_argument("--quick", action="store_true", help="short prompt and prefill, no gpt-fast rows (seconds)")
    parser.add_argument("--workers", type=int, default=1, help="processes simulating distinct ops (same results)")
    args = parser.parse_args(argv)
    out = run(args.outdir, args.designs, args.quick, args.workers)
    for path in out["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
