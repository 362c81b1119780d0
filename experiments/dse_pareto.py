"""Numerical fidelity versus hardware efficiency: the Pareto fronts of a design-space sweep.

Usage::

    python experiments/dse_pareto.py OUTDIR [--sweep FILE] [--workers N | --scheduler ADDRESS | --no-dask]

Runs ``experiments/sweeps/pareto.yaml`` (360 points: MixPE and baseline PE types
x array rows x tiles x DRAM, and group sizes for the group-quantized designs, on
the MixPE authors' OPT-6.7B workload) with :func:`mixpe_sys.dse.run_sweep`
(resumable: points already in ``OUTDIR/results.csv`` are not run again), then
finds two Pareto fronts, both maximizing the quantization SNR (dB, on a fixed
seeded weight matrix):

- against throughput per area (output tokens/s per mm^2, maximized);
- against energy per output token (J, minimized).

Writes into OUTDIR: ``results.csv`` (every point), ``front_area.csv`` and
``front_energy.csv`` (the fronts), ``summary.md`` and the plots
``pareto_area.png`` and ``pareto_energy.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mixpe_sys.dse import expand_points, load_sweep, pareto, plot_pareto, read_results, run_sweep
from mixpe_sys.report import markdown_table
from mixpe_sys.plotting import pyplot_or_exit

pyplot_or_exit(__file__)  # a one-line hint, not a traceback, without matplotlib

HERE = Path(__file__).resolve().parent
DEFAULT_SWEEP = HERE / "sweeps" / "pareto.yaml"

FIDELITY = "snr_db"
AREA_EFFICIENCY = "tokens_per_s_per_mm2"
ENERGY = "energy_per_token_j"

FRONT_COLUMNS = ["label", "family", "quant", "group_size", "array", "num_tiles", "dram", "tokens_per_s",
                 "area_mm2", AREA_EFFICIENCY, ENERGY, FIDELITY]

#: MixPE design and the baseline with the same operand precisions (in-loop dequant), compared at equal settings.
PAIRS = [("mixpe-w4a8", "qserve-w4a8"), ("mixpe-w4a16", "trtllm-w4a16")]


def fronts(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SNR vs tokens/s/mm^2 front, SNR vs energy/token front), sorted by SNR."""
    ok = df[df["status"] == "ok"]
    area = pareto(ok, maximize=[AREA_EFFICIENCY, FIDELITY], only_front=True).sort_values(FIDELITY)
    energy = pareto(ok, maximize=[FIDELITY], minimize=[ENERGY], only_front=True).sort_values(FIDELITY)
    return area, energy


def pair_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """MixPE over its in-loop-dequant baseline at identical parameters: speed, area efficiency, energy."""
    ok = df[df["status"] == "ok"]
    keys = ["group_size", "tile.pe_array.rows", "num_tiles", "dram", "model", "workload", "batch"]
    keys = [k for k in keys if k in ok.columns]
    rows = []
    for mixpe, base in PAIRS:
        a = ok[ok["design"] == mixpe].set_index(keys)
        b = ok[ok["design"] == base].set_index(keys)
        common = a.index.intersection(b.index)
        if not len(common):
            continue
        a, b = a.loc[common], b.loc[common]
        rows.append({"MixPE": mixpe, "baseline": base, "points": len(common),
                     "speedup (geomean)": float(np.exp(np.log(a["tokens_per_s"] / b["tokens_per_s"]).mean())),
                     "tokens/s/mm2 ratio (geomean)": float(np.exp(np.log(a[AREA_EFFICIENCY] / b[AREA_EFFICIENCY])
                                                                  .mean())),
                     "energy/token ratio (geomean)": float(np.exp(np.log(a[ENERGY] / b[ENERGY]).mean()))})
    return pd.DataFrame(rows)


def best_per_design(df: pd.DataFrame) -> pd.DataFrame:
    """Per design preset: its SNR range and its best throughput per area and energy per token."""
    ok = df[df["status"] == "ok"]
    g = ok.groupby("design", sort=False)
    return pd.DataFrame({"family": g["family"].first(), "points": g.size(),
                         "snr_db min": g[FIDELITY].min(), "snr_db max": g[FIDELITY].max(),
                         "best tokens/s/mm2": g[AREA_EFFICIENCY].max(), "best J/token": g[ENERGY].min()}
                        ).reset_index()


def summary_markdown(df: pd.DataFrame, sweep, run, area: pd.DataFrame, energy: pd.DataFrame) -> str:
    """The report: what ran, the two fronts, per-design bests and the MixPE/baseline ratios."""
    ok = int((df["status"] == "ok").sum())
    errors = df[df["status"] == "error"]
    model = ", ".join(sorted(df["model"].dropna().astype(str).unique()))
    lines = [
        f"# Design-space exploration: {sweep.name}", "",
        f"{sweep.description}", "",
        f"Points: {len(df)} ({ok} ok, {len(errors)} errors); model {model}. This run computed "
        f"{len(run.computed)} points and found {run.skipped} already done, in {run.wall_s:.1f} s.", "",
        f"Fidelity: quantization SNR (dB) of a GEMM output, on a seeded {sweep.snr.k}x{sweep.snr.n} standard "
        f"normal weight matrix and {sweep.snr.tokens} tokens (seed {sweep.snr.seed}). Efficiency: output "
        "tokens/s per mm^2 of silicon (28 nm area model) and energy per output token.", "",
        f"## Front: {FIDELITY} vs {AREA_EFFICIENCY} (both maximized) - {len(area)} points", "",
        markdown_table(area[FRONT_COLUMNS]), "",
        f"## Front: {FIDELITY} (maximized) vs {ENERGY} (minimized) - {len(energy)} points", "",
        markdown_table(energy[FRONT_COLUMNS]), "",
        "## Best of each design", "",
        markdown_table(best_per_design(df)), "",
    ]
    ratios = pair_ratios(df)
    if len(ratios):
        lines += ["## MixPE against in-loop dequantization at identical settings", "",
                  "Geometric means over every (group size, rows, tiles, DRAM) both designs ran; "
                  "ratios are MixPE / baseline.", "", markdown_table(ratios), ""]
    if len(errors):
        lines += ["## Errors", "", markdown_table(errors[["label", "error"]]), ""]
    lines += ["Plots: `pareto_area.png`, `pareto_energy.png`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--sweep", type=Path, default=DEFAULT_SWEEP, help="sweep YAML (default: pareto.yaml)")
    parser.add_argument("--workers", type=int, help="local Dask workers (default: CPU count)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--no-dask", action="store_true", help="run the points in this process")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    sweep = load_sweep(args.sweep)
    run = run_sweep(sweep, args.outdir, scheduler=args.scheduler, workers=args.workers, use_dask=not args.no_dask,
                    base_dir=args.sweep.resolve().parent)
    current = {p.point_id for p in expand_points(sweep, args.sweep.resolve().parent)}
    df = read_results(args.outdir)
    df = df[df["point_id"].isin(current)]  # rows of points no longer in the sweep file stay in results.csv only
    area, energy = fronts(df)
    area.to_csv(args.outdir / "front_area.csv", index=False)
    energy.to_csv(args.outdir / "front_energy.csv", index=False)
    ok = df[df["status"] == "ok"]
    plot_pareto(ok, AREA_EFFICIENCY, FIDELITY, args.outdir / "pareto_area.png", group="design",
                title="Fidelity vs throughput per area\nOPT-6.7B, the MixPE authors' workload (batch 64 x 1 token)",
                xlabel="output tokens/s per mm^2", ylabel="quantization SNR (dB)")
    plot_pareto(ok, ENERGY, FIDELITY, args.outdir / "pareto_energy.png", minimize=[ENERGY], group="design",
                logx=True, title="Fidelity vs energy per token\nOPT-6.7B, the MixPE authors' workload (batch 64 x 1 token)",
                xlabel="energy per output token (J, lower is better)", ylabel="quantization SNR (dB)")
    (args.outdir / "summary.md").write_text(summary_markdown(df, sweep, run, area, energy), encoding="utf-8")
    print(f"{len(df)} points ({len(run.computed)} run now) -> {args.outdir} in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
