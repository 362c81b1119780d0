"""Compare the GPU presets with published kernel-level (device-timed) GPU measurements.

Usage::

    python experiments/validate_public_kernels.py OUTDIR [--subset N] [--design NAME]

Data sets (``experiments/data/``, each file's ``#`` header names its source and method):

- ``xla_h100_bf16_gemm.csv``: XLA's published H100 (sm_90) BF16 matmul table, 375 batched GEMMs
  ``b x [m, k] x [k, n]`` with b = 1, 2, 4 and m, n, k = 256 ... 4096, each the median CUPTI
  kernel duration. Compared with ``h100-like``: simulated = ``simulate_gemm(m, n, k, batch=b,
  launch="graph").device_time_s`` (the kernel alone: the measurement excludes launch gaps, so the
  graph launch cost that ``time_s`` adds is left out), measured = 2*b*m*n*k / flops_per_s.
- ``vllm_h100_bf16_linear.csv``: four BF16 linear layers of an LLM (N = 12288, K = 5376, M = 1 ... 128)
  on an H100, each the median per-call time of calls replayed from a CUDA graph
  (``triton.testing.do_bench_cudagraph``). Compared with ``h100-like``: simulated = ``time_s`` with
  ``launch="graph"`` (device time + the graph launch cost per kernel), measured = 2*m*n*k / tflops.
- ``tritonbench_h100_attention.csv``: fused-attention forward kernels on an H100 (tritonbench runs
  in pytorch/benchmark commit messages). Listed, not compared: the simulator has no fused
  attention op to compare them with.

Nothing here is fitted: the presets' parameters come from their YAML sources. Error =
(simulated - measured) / measured. Writes ``public_kernels.csv`` (one row per point) and
``public_kernels.md`` (summary tables). ``--subset N`` takes N points spread evenly over each
compared data set (seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.hw.config import AcceleratorConfig
from mixpe_sys.measurements import read_measurements
from mixpe_sys.report import markdown_table

DATA = Path(__file__).resolve().parent / "data"
#: measured kernels shorter than this are reported apart: their time is mostly the fixed cost of
#: starting and finishing a kernel, which the presets do not model (docs/accuracy.md)
SHORT_KERNEL_US = 10.0
#: data sets of at most this many points also get a per-point table in the report
SMALL_SET_POINTS = 20


@dataclass(frozen=True)
class DataSet:
    """One published measurement file and the preset of the GPU it was measured on."""

    name: str
    file: str
    design: str
    rows: Callable[[Path, AcceleratorConfig, int | None], list[dict]] | None  # (file, preset, subset); None: not compared
    why_not: str = ""


def xla_gemm_points(path: Path) -> pd.DataFrame:
    """The GEMMs of an XLA matmul table CSV, with ``measured_us`` from 2*b*m*n*k / flops_per_s."""
    _, df = read_measurements(path, {"b": int, "m": int, "n": int, "k": int, "flops_per_s": float})
    df = df.copy()
    df["measured_us"] = 2.0 * df["b"] * df["m"] * df["n"] * df["k"] / df["flops_per_s"] * 1e6
    return df


def linear_points(path: Path) -> pd.DataFrame:
    """The GEMMs of a ``m, n, k, tflops`` CSV (one instance each), with ``measured_us`` = 2*m*n*k / tflops."""
    _, df = read_measurements(path, {"m": int, "n": int, "k": int, "tflops": float})
    df = df.copy()
    df["b"] = 1
    df["measured_us"] = 2.0 * df["m"] * df["n"] * df["k"] / (df["tflops"] * 1e12) * 1e6
    return df


def gemm_rows(points: pd.DataFrame, design: AcceleratorConfig, with_launch: bool = False) -> list[dict]:
    """Simulate each GEMM (BF16 = the preset's 16-bit tensor-core rate) against its measurement.

    ``with_launch``: compare ``time_s`` under ``launch="graph"`` (graph-replayed measurements)
    instead of ``device_time_s`` (kernel durations).
    """
    rows = []
    for r in points.itertuples():
        sim = simulate_gemm(int(r.m), int(r.n), int(r.k), design, batch=int(r.b), launch="graph")
        sim_us = (sim.time_s if with_launch else sim.device_time_s) * 1e6
        rows.append({"point": f"{r.b}x{r.m}x{r.n}x{r.k}", "b": int(r.b), "m": int(r.m), "n": int(r.n),
                     "k": int(r.k), "measured_us": float(r.measured_us), "simulated_us": sim_us,
                     "error_pct": 100.0 * (sim_us - r.measured_us) / r.measured_us,
                     "measured_tflops": 2.0 * r.b * r.m * r.n * r.k / r.measured_us * 1e-6,
                     "bound": sim.roofline_bound})
    return rows


def spread(df: pd.DataFrame, count: int | None) -> pd.DataFrame:
    """``count`` rows spread evenly over ``df`` (all rows when ``count`` is None or not smaller)."""
    if count is None or count >= len(df):
        return df
    step = len(df) / count
    return df.iloc[[int(i * step) for i in range(count)]]


DATASETS = (
    DataSet("xla-h100-bf16-gemm", "xla_h100_bf16_gemm.csv", "h100-like",
            lambda path, design, subset: gemm_rows(spread(xla_gemm_points(path), subset), design)),
    DataSet("vllm-h100-bf16-linear", "vllm_h100_bf16_linear.csv", "h100-like",
            lambda path, design, subset: gemm_rows(spread(linear_points(path), subset), design, with_launch=True)),
    DataSet("tritonbench-h100-attention", "tritonbench_h100_attention.csv", "h100-like", None,
            "fused attention (one kernel: Q block stationary, K and V streamed) is not an op of this simulator yet"),
)


def summarise(df: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Points, median, mean and worst |error| (%), and the median signed error, overall or per ``by`` value."""
    groups = [("all", df)] if by is None else list(df.groupby(by, sort=True))
    out = []
    for key, part in groups:
        err = part["error_pct"]
        out.append({by or "rows": key, "points": len(part), "median_abs_error_pct": err.abs().median(),
                    "mean_abs_error_pct": err.abs().mean(), "worst_abs_error_pct": err.abs().max(),
                    "median_signed_error_pct": err.median()})
    return pd.DataFrame(out)


def run(outdir: Path, subset: int | None = None, design_name: str | None = None, data: Path = DATA) -> dict:
    """Compare every data set with its preset (or ``design_name``); write the tables into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    frames, lines = [], ["# GPU presets against published kernel measurements", "",
                         "Error = (simulated - measured) / measured; simulated = the preset's device time "
                         "(kernel durations) or device time + graph launch (graph-replayed calls).", ""]
    skipped = []
    for ds in DATASETS:
        if ds.rows is None:
            skipped.append(ds)
            continue
        design = load_design(design_name or ds.design)
        df = pd.DataFrame(ds.rows(data / ds.file, design, subset))
        df.insert(0, "design", design.name)
        df.insert(0, "dataset", ds.name)
        df["kernel_length"] = ["short" if t < SHORT_KERNEL_US else "long" for t in df["measured_us"]]
        frames.append(df)
        lines += [f"## {ds.name} (`data/{ds.file}`) on `{design.name}`", "",
                  markdown_table(summarise(df).round(1)), "",
                  f"By measured kernel length (short: under {SHORT_KERNEL_US:g} us):", "",
                  markdown_table(summarise(df, "kernel_length").round(1)), "",
                  "By the preset's roofline bound:", "", markdown_table(summarise(df, "bound").round(1)), ""]
        if df["b"].nunique() > 1:
            lines += ["By batch b:", "", markdown_table(summarise(df, "b").round(1)), ""]
        if len(df) <= SMALL_SET_POINTS:
            cols = ["point", "measured_us", "simulated_us", "error_pct", "bound"]
            lines += ["Per point:", "", markdown_table(df[cols].round(3)), ""]
        lines += [f"Shortest measured time {df['measured_us'].min():.3f} us; the preset's shortest simulated "
                  f"time on these points {df['simulated_us'].min():.3f} us.", ""]
    for ds in skipped:
        lines += [f"## {ds.name} (`data/{ds.file}`): not compared", "", f"Reason: {ds.why_not}.", ""]
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    points.to_csv(outdir / "public_kernels.csv", index=False)
    (outdir / "public_kernels.md").write_text("\n".join(lines), encoding="utf-8")
    return {"points": points, "files": [outdir / "public_kernels.csv", outdir / "public_kernels.md"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--subset", type=int, default=None, help="N points spread over each data set")
    parser.add_argument("--design", default=None, help="simulate this preset instead of each data set's own")
    args = parser.parse_args(argv)
    if args.subset is not None and args.subset < 1:
        parser.error("--subset must be at least 1")
    out = run(args.outdir, args.subset, args.design)
    if len(out["points"]):
        print(summarise(out["points"], "dataset").round(1).to_string(index=False))
    for path in out["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
