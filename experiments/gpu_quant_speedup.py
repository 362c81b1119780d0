"""Speedup of W4A16 and W4A8 GEMMs over FP16 on the GPU presets: Llama-2-7B decode GEMMs at M = 1 ... 512.

Usage::

    python experiments/gpu_quant_speedup.py OUTDIR [--designs a100-like,h100-like] [--quick]

For each design, each of the four decode GEMMs of Llama-2-7B (N x K: 4096 x 4096,
11008 x 4096, 4096 x 11008, 12288 x 4096) and each batch M, the simulated device time
(``simulate_gemm(...).device_time_s``, no launch cost) at FP16 (W16A16), W4A16 and
W4A8 (INT4 weights in groups of 128 with an FP16 scale and a 4-bit zero per group).
On the GPU presets the INT4 weights are converted in the main loop by the SM's ALUs
(``tile.dequant``: in_loop, 78 weights per clock per SM), overlapped with the tensor
cores; W4A8 runs on the INT8 tensor cores (twice the FP16 rate). ``speedup`` =
FP16 time / quantized time. Writes ``quant_speedup.csv``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.report import markdown_table

SHAPES: tuple[tuple[int, int], ...] = ((4096, 4096), (11008, 4096), (4096, 11008), (12288, 4096))
BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
QUANTS: tuple[str, ...] = ("W16A16", "W4A16", "W4A8")
DESIGNS: tuple[str, ...] = ("a100-like", "h100-like")


def speedups(designs: Sequence[str] = DESIGNS, shapes: Sequence[tuple[int, int]] = SHAPES,
             batches: Sequence[int] = BATCHES) -> pd.DataFrame:
    """One row per (design, GEMM, M): device time (us) per scheme, speedups over FP16, converter stalls."""
    rows = []
    for name in designs:
        design = load_design(name)
        for n, k in shapes:
            for m in batches:
                row = {"design": name, "n": n, "k": k, "m": m}
                for q in QUANTS:
                    r = simulate_gemm(m, n, k, design, quant=q)
                    row[f"{q}_us"] = r.device_time_s * 1e6
                    row[f"{q}_bound"] = r.roofline_bound
                    row[f"{q}_roofline_us"] = r.roofline_time_s * 1e6
                for q in QUANTS[1:]:
                    row[f"{q}_speedup"] = row["W16A16_us"] / row[f"{q}_us"]
                    row[f"{q}_roofline_speedup"] = row["W16A16_roofline_us"] / row[f"{q}_roofline_us"]
                rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, wall_s: float) -> str:
    lines = ["# W4A16 and W4A8 over FP16 on the GPU presets: Llama-2-7B decode GEMMs", "",
             "Device time (no launch cost) from `simulate_gemm`; speedup = FP16 time / quantized time; "
             "roofline speedup = the same ratio of the rooflines (compulsory bytes / peak bandwidth, MACs / "
             "peak rate). Regenerate with `python experiments/gpu_quant_speedup.py OUTDIR`.", ""]
    for (design, n, k), part in df.groupby(["design", "n", "k"], sort=False):
        table = part[["m", "W16A16_us", "W4A16_us", "W4A8_us", "W4A16_speedup", "W4A8_speedup",
                      "W4A16_roofline_speedup", "W4A8_roofline_speedup"]].round(2)
        lines += [f"## {design}, N x K = {n} x {k}", "", markdown_table(table), ""]
    lines += [f"Simulation wall time: {wall_s:.0f} s.", ""]
    return "\n".join(lines)


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    designs = list(dict.fromkeys(df.design))
    fig, axes = plt.subplots(1, len(designs), figsize=(5.5 * len(designs), 4), squeeze=False)
    for ax, design in zip(axes.flat, designs):
        for (n, k), part in df[df.design == design].groupby(["n", "k"], sort=False):
            for q, style in (("W4A16", "-o"), ("W4A8", "--s")):
                ax.semilogx(part.m, part[f"{q}_speedup"], style, ms=3, label=f"{q} {n}x{k}")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch M (tokens)")
        ax.set_ylabel("speedup over FP16 (device time)")
        ax.set_title(design)
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(outdir: Path, designs: Sequence[str] = DESIGNS, quick: bool = False) -> dict:
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    df = speedups(designs, SHAPES[:1] if quick else SHAPES, (1, 16, 256) if quick else BATCHES)
    wall = time.perf_counter() - start
    df.to_csv(outdir / "quant_speedup.csv", index=False)
    (outdir / "quant_speedup.md").write_text(markdown(df, wall), encoding="utf-8")
    plot(df, outdir / "quant_speedup.png")
    return {"speedups": df, "wall_s": wall,
            "files": [outdir / f"quant_speedup.{ext}" for ext in ("csv", "md", "png")]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--designs", type=lambda t: tuple(t.split(",")), default=DESIGNS)
    parser.add_argument("--quick", action="store_true", help="one GEMM, three batch sizes (seconds)")
    args = parser.parse_args(argv)
    out = run(args.outdir, args.designs, args.quick)
    for path in out["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
