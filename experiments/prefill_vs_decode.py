"""Prefill versus decode: the per-op roofline, and where each design turns compute-bound with batch size.

Usage::

    python experiments/prefill_vs_decode.py OUTDIR [--model NAME] [--designs A,B,...] [--quick]

1. Per-op roofline: every distinct op of a Llama-2-7B prefill (512 tokens) and
   of its decode steps on ``mixpe-w4a8``, placed by arithmetic intensity
   (MACs per DRAM byte) against achieved MAC rate, under the design's roof.
2. Batch sweep: one decode step (after a 512-token prompt) at batch 1, 2, 4, ..., 256 on each
   design: time per step, tokens/s, and the share of the step spent in
   memory-bound ops; the smallest batch where the linear layers become
   compute-bound is the design's turning point.

Writes ``roofline_ops.csv``, ``roofline.png``, ``batch_sweep.csv``,
``batch_sweep.png`` and ``summary.md`` into OUTDIR.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mixpe_sys.plotting import pyplot_or_exit

plt = pyplot_or_exit(__file__)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mixpe_sys import load_design  # noqa: E402
from mixpe_sys.mapping.gemm import peak_macs_per_s  # noqa: E402
from mixpe_sys.report import markdown_table  # noqa: E402
from mixpe_sys.sim.engine import CostCache, run_ops  # noqa: E402
from mixpe_sys.sim.model import simulate_model  # noqa: E402
from mixpe_sys.workload.ops import Phase  # noqa: E402
from mixpe_sys.workload.transformer import head_ops, layer_ops  # noqa: E402
from mixpe_sys.workload.models import load_model  # noqa: E402

DESIGNS = ["mixpe-w4a8", "mixpe-w4a16", "qserve-w4a8", "trtllm-w4a16", "int8", "fp16"]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
PROMPT = 512


def roofline_ops(model, design) -> pd.DataFrame:
    """Distinct array ops of a prefill and a 3-step decode, with intensity and achieved rate."""
    r = simulate_model(model, design, batch=1, prompt=PROMPT, generate=4)
    ops = r.ops[(r.ops["macs"] > 0) & (r.ops["layer"] <= 0)]
    ops = ops[(ops["phase"] == "prefill") | (ops["step"] == 1)]
    out = ops[["phase", "name", "m", "n", "k", "macs", "time_s", "dram_read_bytes", "dram_write_bytes",
               "bound"]].copy()
    out["intensity_macs_per_byte"] = out["macs"] / (out["dram_read_bytes"] + out["dram_write_bytes"])
    out["achieved_macs_per_s"] = out["macs"] / out["time_s"]
    return out.reset_index(drop=True)


def plot_roofline(ops: pd.DataFrame, design, path: Path) -> None:
    q = design.quant
    from mixpe_sys.mapping.gemm import GemmSpec

    peak = peak_macs_per_s(GemmSpec(m=1, n=1, k=1, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                                    activation_format=q.activation_format), design)
    bw = design.dram.bandwidth_bytes_per_s
    x = np.logspace(-1, 4, 200)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.loglog(x, np.minimum(peak, x * bw), "k-", label=f"roof ({design.name})")
    for phase, marker in (("prefill", "o"), ("decode", "s")):
        sel = ops[ops["phase"] == phase]
        ax.scatter(sel["intensity_macs_per_byte"], sel["achieved_macs_per_s"], marker=marker, label=phase)
        for row in sel.itertuples():
            ax.annotate(row.name, (row.intensity_macs_per_byte, row.achieved_macs_per_s), fontsize=7)
    ax.set_xlabel("arithmetic intensity (MACs / DRAM byte)")
    ax.set_ylabel("achieved MACs / s")
    ax.set_title("Per-op roofline, Llama-2-7B, prompt 512")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def decode_step_ops(model, design, batch: int):
    """The ops of one decode step (token 2 after a ``PROMPT``-token prefill) for ``batch`` sequences."""
    where = dict(batch=batch, phase=Phase.DECODE, step=1)
    layer = layer_ops(model, design.quant, q_tokens=1, kv_len=PROMPT + 1, **where)
    return layer * model.num_layers + head_ops(model, design.quant, **where)


def batch_sweep(model, designs: list[str], batches: list[int]) -> pd.DataFrame:
    """One row per (design, batch): the decode step's time, tokens/s and memory-bound share."""
    rows = []
    for name in designs:
        design = load_design(name)
        cache = CostCache(design)
        for b in batches:
            step = run_ops(decode_step_ops(model, design, b), design, cache=cache, progress=False).ops
            lin = step[step["kind"] == "linear"]
            t = float(step["time_s"].sum())
            rows.append({"design": name, "batch": b, "step_time_s": t, "tokens_per_s": b / t,
                         "memory_bound_share": float(step.loc[step["bound"] == "memory", "time_s"].sum()) / t,
                         "linear_compute_bound": bool((lin["bound"] == "compute").all()),
                         # compute_time_s is MACs over the peak rate, so this is the achieved share of peak
                         "linear_utilization": float(lin["compute_time_s"].sum() / lin["time_s"].sum())})
    return pd.DataFrame(rows)


def plot_sweep(df: pd.DataFrame, path: Path) -> None:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, g in df.groupby("design", sort=False):
        a1.loglog(g["batch"], g["step_time_s"] * 1e3, "o-", label=name)
        a2.semilogx(g["batch"], g["memory_bound_share"], "o-", label=name)
    a1.set_xlabel("batch")
    a1.set_ylabel("decode step time (ms)")
    a2.set_xlabel("batch")
    a2.set_ylabel("share of step time memory-bound")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir")
    p.add_argument("--model", default="llama-2-7b")
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument("--quick", action="store_true", help="batches 1, 16, 256 only")
    args = p.parse_args(argv)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = load_model(args.model)
    design = load_design("mixpe-w4a8")
    ops = roofline_ops(model, design)
    ops.to_csv(out / "roofline_ops.csv", index=False)
    plot_roofline(ops, design, out / "roofline.png")
    sweep = batch_sweep(model, args.designs.split(","), [1, 16, 256] if args.quick else BATCHES)
    sweep.to_csv(out / "batch_sweep.csv", index=False)
    plot_sweep(sweep, out / "batch_sweep.png")
    turning = (sweep[sweep["linear_compute_bound"]].groupby("design", sort=False)["batch"].min()
               .reindex(sweep["design"].unique()))
    table = pd.DataFrame({"design": turning.index,
                          "first batch with compute-bound linear layers":
                              [("> %d" % sweep["batch"].max()) if pd.isna(v) else str(int(v)) for v in turning]})
    md = ["# Prefill versus decode", "",
          f"Model {args.model}, prompt {PROMPT}. Run time {time.perf_counter() - start:.0f} s.", "",
          "## Per-op roofline on mixpe-w4a8 (layer 0, one decode step)", "",
          markdown_table(ops[["phase", "name", "m", "n", "k", "intensity_macs_per_byte", "achieved_macs_per_s",
                              "bound"]]), "",
          "## Where each design's decode turns compute-bound", "", markdown_table(table), "",
          "## Decode step by batch", "",
          markdown_table(sweep[["design", "batch", "step_time_s", "tokens_per_s", "memory_bound_share"]]), ""]
    (out / "summary.md").write_text("\n".join(md))
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
