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
from mixpe_sys.hw.precision import run_quant  # noqa: E402
from mixpe_sys.mapping.gemm import peak_macs_per_s  # noqa: E402
from mixpe_sys.report import markdown_table  # noqa: E402
from mixpe_sys.serving.kv_cache import kv_budget  # noqa: E402
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
    r = simulate_model(model, design, batch=1, prompt=PROMPT, generate=4, quant=run_quant(design))
    ops = r.ops[(r.ops["macs"] > 0) & (r.ops["layer"] <= 0)]
    ops = ops[(ops["phase"] == "prefill") | (ops["step"] == 1)]
    out = ops[["phase", "name", "m", "n", "k", "macs", "time_s", "dram_read_bytes", "dram_write_bytes",
               "roofline_bound"]].copy()
    out["intensity_macs_per_byte"] = out["macs"] / (out["dram_read_bytes"] + out["dram_write_bytes"])
    out["achieved_macs_per_s"] = out["macs"] / out["time_s"]
    return out.reset_index(drop=True)


def _label_groups(ops: pd.DataFrame) -> list[tuple[float, float, str]]:
    """Ops at (nearly) the same point share one label: ``(x, y, "qkv, o_proj")``."""
    groups: list[list] = []
    for row in ops.itertuples():
        x, y = row.intensity_macs_per_byte, row.achieved_macs_per_s
        for g in groups:
            if abs(np.log(x / g[0])) < 0.25 and abs(np.log(y / g[1])) < 0.25:
                g[2].append(row.name)
                break
        else:
            groups.append([x, y, [row.name]])
    return [(x, y, ", ".join(dict.fromkeys(names))) for x, y, names in groups]


def plot_roofline(ops: pd.DataFrame, design, model_name: str, path: Path) -> None:
    q = run_quant(design)
    from mixpe_sys.mapping.gemm import GemmSpec

    peak = peak_macs_per_s(GemmSpec(m=1, n=1, k=1, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                                    activation_format=q.activation_format), design)
    bw = design.dram.bandwidth_bytes_per_s
    x = np.logspace(-1, 4, 200)
    fig, ax = plt.subplots(figsize=(8, 5.2))
    ax.loglog(x, np.minimum(peak, x * bw), "k-", label=f"roofline: {bw / 1e9:.0f} GB/s DRAM, "
                                                        f"{peak / 1e12:.1f} TMAC/s peak")
    offsets = [(8, 10), (8, -16), (-60, 12), (-60, -18), (12, 24), (12, -30)]
    for phase, marker in (("prefill", "o"), ("decode", "s")):
        sel = ops[ops["phase"] == phase]
        ax.scatter(sel["intensity_macs_per_byte"], sel["achieved_macs_per_s"], marker=marker,
                   label=f"{phase} ops" + (f" ({PROMPT}-token prompt)" if phase == "prefill" else " (one step)"))
        if phase == "prefill":  # the LM head runs on the last prompt token only: a GEMV, under the decode ops
            sel = sel.assign(name=sel["name"].replace({"lm_head": "lm_head (prefill: last token only)"}))
        for i, (px, py, text) in enumerate(_label_groups(sel)):
            ax.annotate(text, (px, py), xytext=offsets[i % len(offsets)], textcoords="offset points", fontsize=7,
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"})
    ax.set_xlabel("arithmetic intensity (MACs per DRAM byte)")
    ax.set_ylabel("achieved MAC rate (MACs/s)")
    ax.set_title(f"Per-op roofline: {model_name} on {design.name} ({q.name}), layer 0")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def decode_step_ops(model, design, batch: int):
    """The ops of one decode step (token 2 after a ``PROMPT``-token prefill) for ``batch`` sequences."""
    where = dict(batch=batch, phase=Phase.DECODE, step=1)
    quant = run_quant(design)
    layer = layer_ops(model, quant, q_tokens=1, kv_len=PROMPT + 1, **where)
    return layer * model.num_layers + head_ops(model, quant, **where)


def batch_sweep(model, designs: list[str], batches: list[int]) -> pd.DataFrame:
    """One row per (design, batch): the decode step's time, tokens/s, memory-bound share, and whether the
    batch's KV cache (``batch x (PROMPT + 1)`` tokens) fits the design's DRAM beside the weights."""
    rows = []
    for name in designs:
        design = load_design(name)
        cache = CostCache(design)
        capacity = kv_budget(model, design, run_quant(design)).capacity_tokens
        for b in batches:
            step = run_ops(decode_step_ops(model, design, b), design, cache=cache, progress=False).ops
            lin = step[step["kind"] == "linear"]
            t = float(step["time_s"].sum())
            rows.append({"design": name, "batch": b, "step_time_s": t, "tokens_per_s": b / t,
                         "memory_bound_share": float(step.loc[step["roofline_bound"] == "memory", "time_s"].sum()) / t,
                         "linear_compute_bound": bool((lin["roofline_bound"] == "compute").all()),
                         # compute_time_s is MACs over the peak rate, so this is the achieved share of peak
                         "linear_utilization": float(lin["compute_time_s"].sum() / lin["time_s"].sum()),
                         "kv_fits": b * (PROMPT + 1) <= capacity})
    return pd.DataFrame(rows)


MARKERS = "osD^vP*X"
STYLES = ["-", "--", "-.", ":"]


def plot_sweep(df: pd.DataFrame, model_name: str, path: Path) -> None:
    """Step time and memory-bound share by batch; each design its own marker and dash (equal curves stay
    visible), open markers where the batch's KV cache would not fit the design's DRAM."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, (name, g) in enumerate(df.groupby("design", sort=False)):
        style = dict(marker=MARKERS[i % len(MARKERS)], linestyle=STYLES[i % len(STYLES)], markersize=7 - i % 3,
                     label=name)
        line, = a1.loglog(g["batch"], g["step_time_s"] * 1e3, **style)
        a2.semilogx(g["batch"], g["memory_bound_share"] * 100, **style)
        over = g[~g["kv_fits"]]
        for ax, col, scale in ((a1, "step_time_s", 1e3), (a2, "memory_bound_share", 100)):
            ax.scatter(over["batch"], over[col] * scale, s=90, facecolors="white", edgecolors=line.get_color(),
                       zorder=3, marker=MARKERS[i % len(MARKERS)])
    a1.scatter([], [], s=90, facecolors="white", edgecolors="k", label="KV cache would not fit the DRAM")
    for ax in (a1, a2):
        ax.set_xlabel("batch (sequences)")
        ax.grid(True, which="both", alpha=0.3)
    a1.set_ylabel("decode step time (ms)")
    a2.set_ylabel("share of step time in memory-bound ops (%)")
    a2.set_ylim(-3, 103)
    a1.set_title("Time of one decode step")
    a2.set_title("Memory-bound share of the step")
    a1.legend(fontsize=8)
    fig.suptitle(f"{model_name}: one decode step after a {PROMPT}-token prompt, by batch and design")
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
    plot_roofline(ops, design, model.name, out / "roofline.png")
    sweep = batch_sweep(model, args.designs.split(","), [1, 16, 256] if args.quick else BATCHES)
    sweep.to_csv(out / "batch_sweep.csv", index=False)
    plot_sweep(sweep, model.name, out / "batch_sweep.png")
    turning = (sweep[sweep["linear_compute_bound"]].groupby("design", sort=False)["batch"].min()
               .reindex(sweep["design"].unique()))
    table = pd.DataFrame({"design": turning.index,
                          "first batch with compute-bound linear layers":
                              [("> %d" % sweep["batch"].max()) if pd.isna(v) else str(int(v)) for v in turning]})
    md = ["# Prefill versus decode", "",
          f"Model {args.model}, prompt {PROMPT}. Run time {time.perf_counter() - start:.0f} s.", "",
          "## Per-op roofline on mixpe-w4a8 (layer 0, one decode step)", "",
          markdown_table(ops[["phase", "name", "m", "n", "k", "intensity_macs_per_byte", "achieved_macs_per_s",
                              "roofline_bound"]]), "",
          "## Where each design's decode turns compute-bound", "", markdown_table(table), "",
          "## Decode step by batch", "",
          "`kv_fits` is false where the batch's KV cache (batch x 513 tokens) would not fit the design's DRAM "
          "beside the weights: such a batch cannot run there, its figures are the hardware's cost only.", "",
          markdown_table(sweep[["design", "batch", "step_time_s", "tokens_per_s", "memory_bound_share",
                                "kv_fits"]]), ""]
    (out / "summary.md").write_text("\n".join(md))
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
