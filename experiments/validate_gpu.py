"""How accurate is the simulator? Compare the A100 presets with LLMCompass's host-timed A100 GEMMs.

Usage::

    python experiments/validate_gpu.py OUTDIR [--subset] [--all] [--fit] [--fit-efficiencies 0.88,...]

Measurements: the LLMCompass authors' A100 timings (``experiments/data/llmcompass_a100_matmul.csv``,
copied from PrincetonUniversity/LLMCompass ``ae/figure5/ab/real_hardware/matmul_A100.csv``):
``torch.matmul`` on BF16 operands (tensor-core rate equal to FP16), the median over repeated
calls of the host wall clock around one call and a ``torch.cuda.synchronize()``, so each time
includes the kernel launch and the Python/PyTorch dispatch. The machine was an A100 80 GB
(their simulator models it as ``A100_80GB``, 2,039 GB/s; the M=64 point moves 305 MB in
0.190 ms = 1.61 TB/s, more than the 40 GB part's 1,555 GB/s peak), so the comparison runs the
``a100-80gb-like`` preset.

Because the times are host-timed, the simulated time is ``simulate_gemm(..., launch="eager")``:
the device time plus the design's eager launch cost of one kernel (``launch.launch_ns +
launch.host_dispatch_ns``). Error = (simulated - measured) / measured. Nothing is fitted per
shape: ``--fit`` searches a grid of the two efficiency parameters, ``launch.host_dispatch_ns``
and the DRAM ``bandwidth_efficiency``, by median absolute error over the rows marked ``fit`` in
the CSV (see :func:`fit`), reports the error on the held-out ``check`` rows too, and writes the
grid; the values it finds are copied by hand into ``a100-like.yaml``.

Writes into OUTDIR:

- ``gemm_validation.csv`` / ``.md`` / ``.png``: simulated vs measured per GEMM (with the fit/check split);
- ``decode_gemv.csv`` / ``.md`` / ``.png``: the four decode GEMMs of Llama-2-7B (batch M =
  1 ... 512 tokens) on ``a100-like`` (40 GB): device time, achieved fraction of peak HBM
  bandwidth, the mapper's tiling and estimate, against the memory and compute rooflines;
- ``sensitivity.csv`` (not with ``--subset``): change of a few device times when an
  unfitted parameter (DRAM latency, L2 bandwidth) is halved or doubled;
- ``fit_grid.csv`` and ``fit_kernels.csv`` (with ``--fit``): error figures per grid
  point, and the simulated device time of every GEMM at every efficiency.

``--subset`` runs a few small GEMMs only (seconds; used by the tests). The default
set skips the three largest published GEMMs (each minutes of simulation); ``--all``
adds them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.hw.config import AcceleratorConfig
from mixpe_sys.measurements import read_measurements
from mixpe_sys.report import markdown_table
from mixpe_sys.plotting import pyplot_or_exit

pyplot_or_exit(__file__)  # a one-line hint, not a traceback, without matplotlib

DATA = Path(__file__).resolve().parent / "data"
MEASUREMENT_FILE = DATA / "llmcompass_a100_matmul.csv"
MEASUREMENT_SOURCE = ("PrincetonUniversity/LLMCompass, ae/figure5/ab/real_hardware/matmul_A100.csv "
                      "(torch.matmul, bf16, median host wall clock incl. launch and synchronize, A100 80 GB)")
#: The preset of the measured machine.
VALIDATION_DESIGN = "a100-80gb-like"

#: LLMCompass' own published accuracy against A100 (Zhang et al., ISCA 2024): mean error per operator
#: and end-to-end, for comparison with the figures this script computes.
LLMCOMPASS_OPERATOR_ERROR_PCT = 10.4
LLMCOMPASS_END_TO_END_ERROR_PCT = 4.1


@dataclass(frozen=True)
class Measurement:
    """One measured GEMM ``[m, k] x [k, n]`` and its time (ms).

    ``group`` says which runs include it (``subset``, also in the default run; ``default``;
    ``large``, only with --all); ``split`` whether --fit uses it (``fit``) or holds it out (``check``).
    """

    m: int
    n: int
    k: int
    measured_ms: float
    group: str
    split: str = "fit"


def load_a100_measurements(path: Path = MEASUREMENT_FILE) -> tuple[Measurement, ...]:
    """Every row of the LLMCompass A100 CSV, in file order."""
    _, df = read_measurements(path, {"m": int, "n": int, "k": int, "measured_ms": float, "group": str,
                                     "split": str})
    return tuple(Measurement(int(r.m), int(r.n), int(r.k), float(r.measured_ms), r.group, r.split)
                 for r in df.itertuples())


#: Every row of matmul_A100.csv, in file order.
A100_MEASUREMENTS: tuple[Measurement, ...] = load_a100_measurements()

#: The decode GEMMs of Llama-2-7B (hidden 4096, FFN 11008) as (n, k): the fused Q/K/V projection,
#: the attention output projection (4096 x 4096, also the shape of each of Q, K, V), the FFN gate
#: and up projections (each 11008 x 4096) and the FFN down projection.
DECODE_SHAPES: tuple[tuple[int, int], ...] = ((4096, 4096), (11008, 4096), (4096, 11008), (12288, 4096))
DECODE_NAMES: dict[tuple[int, int], str] = {(4096, 4096): "o_proj (and q, k, v)", (11008, 4096): "ffn gate / up",
                                            (4096, 11008): "ffn down", (12288, 4096): "fused qkv"}
DECODE_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: The decode curve counts as flat while the device time stays within this factor of the M = 1 time.
FLAT_TOLERANCE = 1.10

#: The --fit grid.
FIT_EFFICIENCIES: tuple[float, ...] = (0.80, 0.84, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98, 1.00)
FIT_HOST_DISPATCH_NS: tuple[float, ...] = tuple(float(v) for v in np.arange(0.0, 35000.0 + 1, 500.0))
#: A point is DRAM-bandwidth-bound when its simulated DRAM traffic at the sustained
#: bandwidth takes at least this fraction of its simulated device time.
BANDWIDTH_BOUND_FRACTION = 0.8
#: Efficiencies whose bandwidth-bound error is this close (percentage points) to the best count as
#: equally good: one measured GEMM cannot resolve smaller differences.
EFFICIENCY_TOLERANCE_PCT = 0.5


def measurements(selection: str = "default") -> list[Measurement]:
    """The measured GEMMs of a run: ``"subset"``, ``"default"`` (subset included) or ``"all"``."""
    groups = {"subset": {"subset"}, "default": {"subset", "default"},
              "all": {"subset", "default", "large"}}[selection]
    return [p for p in A100_MEASUREMENTS if p.group in groups]


def validation_design(design: str | AcceleratorConfig = VALIDATION_DESIGN) -> AcceleratorConfig:
    """The preset of the measured machine (the A100 80 GB)."""
    return design if isinstance(design, AcceleratorConfig) else load_design(design)


def eager_overhead_ns(design: AcceleratorConfig) -> float:
    """The design's eager launch cost of one kernel (ns): what a host-timed call adds to the kernel."""
    return 0.0 if design.launch is None else design.launch.kernel_overhead_ns("eager")


def with_params(design: AcceleratorConfig, *, host_dispatch_ns: float | None = None,
                bandwidth_efficiency: float | None = None) -> AcceleratorConfig:
    """``design`` with other efficiency parameters (None keeps the design's value)."""
    if bandwidth_efficiency is not None:
        design = dataclasses.replace(design, dram=dataclasses.replace(
            design.dram, bandwidth_efficiency=bandwidth_efficiency))
    if host_dispatch_ns is not None:
        design = dataclasses.replace(design, launch=dataclasses.replace(
            design.launch, host_dispatch_ns=host_dispatch_ns))
    return design


def kernel_times(design: AcceleratorConfig, points: Sequence[Measurement],
                 progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Simulated device time of each GEMM (ms, no launch cost) and the wall time it took (s).

    ``dram_busy_fraction`` is the simulated DRAM traffic at the sustained bandwidth
    (peak x efficiency) over the device time.
    """
    sustained = design.dram.bandwidth_bytes_per_s * design.dram.bandwidth_efficiency
    rows = []
    for p in points:
        start = time.perf_counter()
        r = simulate_gemm(p.m, p.n, p.k, design)
        wall = time.perf_counter() - start
        t = r.device_time_s
        rows.append({"m": p.m, "n": p.n, "k": p.k, "split": p.split, "measured_ms": p.measured_ms,
                     "kernel_ms": t * 1e3, "roofline_ms": r.roofline_time_s * 1e3, "roofline_bound": r.roofline_bound,
                     "dram_busy_fraction": (r.dram_read_bytes + r.dram_write_bytes) / sustained / t,
                     "tile_steps": len(r.steps), "wall_s": wall})
        if progress is not None:
            progress(f"{p.m}x{p.n}x{p.k}: {t * 1e3:.4f} ms device, {p.measured_ms:.4f} ms measured "
                     f"({wall:.1f} s)")
    return pd.DataFrame(rows)


def add_errors(kernels: pd.DataFrame, overhead_ns: float) -> pd.DataFrame:
    """Add the eager launch cost and the error columns to a :func:`kernel_times` frame.

    ``simulated_ms = kernel_ms + overhead``; ``error_pct = 100 (simulated - measured) / measured``.
    """
    df = kernels.copy()
    df["overhead_ms"] = overhead_ns * 1e-6
    df["simulated_ms"] = df["kernel_ms"] + df["overhead_ms"]
    df["error_pct"] = 100.0 * (df["simulated_ms"] - df["measured_ms"]) / df["measured_ms"]
    df["abs_error_pct"] = df["error_pct"].abs()
    flops = 2.0 * df["m"] * df["n"] * df["k"]
    df["measured_tflops"] = flops / (df["measured_ms"] * 1e-3) / 1e12
    df["simulated_tflops"] = flops / (df["simulated_ms"] * 1e-3) / 1e12
    return df


def error_summary(df: pd.DataFrame) -> dict[str, float]:
    """Median, mean and max absolute error (%) over the rows of an :func:`add_errors` frame."""
    err = df["abs_error_pct"]
    return {"points": int(len(df)), "median_abs_error_pct": float(err.median()),
            "mean_abs_error_pct": float(err.mean()), "max_abs_error_pct": float(err.max())}


def split_summary(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`error_summary` over all rows, the ``fit`` rows and the held-out ``check`` rows."""
    rows = [{"rows": "all", **error_summary(df)}]
    for split in ("fit", "check"):
        part = df[df["split"] == split]
        if len(part):
            rows.append({"rows": split, **error_summary(part)})
    return pd.DataFrame(rows)


def validate(design: AcceleratorConfig, points: Sequence[Measurement],
             progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Simulated (eager) vs measured time of each GEMM on ``design`` (ms) with the error per point."""
    return add_errors(kernel_times(design, points, progress), eager_overhead_ns(design))


def fit(design: AcceleratorConfig, points: Sequence[Measurement],
        efficiencies: Iterable[float] = FIT_EFFICIENCIES, dispatch_ns: Iterable[float] = FIT_HOST_DISPATCH_NS,
        progress: Callable[[str], None] | None = None) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Grid search of the DRAM ``bandwidth_efficiency`` and ``launch.host_dispatch_ns`` on the ``fit`` rows.

    Every efficiency needs a simulation of every point; the host dispatch cost adds
    to every simulated time, so it is swept without simulating again. Only the
    points whose ``split`` is ``fit`` choose; the grid also records the error on the
    held-out ``check`` points (``check_*`` columns), which never choose.

    1. For each efficiency, the dispatch cost with the smallest median absolute error
       over the fit points (ties: smaller mean, then max).
    2. The efficiency from the median absolute error of its step-1 pair over the fit
       points that are DRAM-bandwidth-bound: those whose simulated DRAM traffic keeps
       the DRAM busy at least :data:`BANDWIDTH_BOUND_FRACTION` of the device time (the
       median over all points hardly depends on the efficiency: most GEMMs are
       compute-bound or dominated by the fixed cost). Of the efficiencies within
       :data:`EFFICIENCY_TOLERANCE_PCT` percentage points of the smallest error, the
       smallest is chosen. Without bandwidth-bound points, step 2 uses the median over
       all fit points the same way.

    Returns
    -------
    (best, grid, kernels):
        The chosen grid point (``bandwidth_efficiency``, ``host_dispatch_ns``, its fit and
        check error figures), one row per grid point, and the simulated device time of
        every point at every efficiency.
    """
    dispatch = list(dispatch_ns)
    launch_ns = design.launch.launch_ns
    rows, tables = [], []
    for eff in efficiencies:
        kernels = kernel_times(with_params(design, bandwidth_efficiency=eff), points)
        kernels.insert(0, "bandwidth_efficiency", eff)
        tables.append(kernels)
        is_fit = kernels["split"] == "fit"
        bw_bound = (kernels["dram_busy_fraction"] >= BANDWIDTH_BOUND_FRACTION) & is_fit
        if progress is not None:
            progress(f"bandwidth_efficiency {eff:.2f}: simulated {len(points)} GEMMs "
                     f"in {kernels['wall_s'].sum():.1f} s ({int(bw_bound.sum())} DRAM-bandwidth-bound fit points)")
        for d in dispatch:
            df = add_errors(kernels, launch_ns + d)
            bw_err = df.loc[bw_bound, "abs_error_pct"]
            check = df[~is_fit]
            rows.append({"bandwidth_efficiency": eff, "host_dispatch_ns": d, **error_summary(df[is_fit]),
                         "bandwidth_bound_points": int(bw_bound.sum()),
                         "bandwidth_bound_median_abs_error_pct": float(bw_err.median()) if len(bw_err) else np.nan,
                         **({f"check_{k}": v for k, v in error_summary(check).items()} if len(check) else {})})
    grid = pd.DataFrame(rows)
    order = ["median_abs_error_pct", "mean_abs_error_pct", "max_abs_error_pct"]
    per_eff = (grid.sort_values(order, kind="stable").groupby("bandwidth_efficiency", sort=False).head(1))
    key = "bandwidth_bound_median_abs_error_pct"
    if per_eff[key].isna().all():
        key = "median_abs_error_pct"
    close = per_eff[per_eff[key] <= per_eff[key].min() + EFFICIENCY_TOLERANCE_PCT]
    best = close.sort_values("bandwidth_efficiency", kind="stable").iloc[0]
    return best.to_dict(), grid, pd.concat(tables, ignore_index=True)


def decode_curve(design: AcceleratorConfig, shapes: Sequence[tuple[int, int]] = DECODE_SHAPES,
                 batches: Sequence[int] = DECODE_BATCHES) -> pd.DataFrame:
    """Decode GEMMs ``[M, K] x [K, N]`` for each batch M: simulated device time against the roofline.

    ``hbm_fraction`` is the compulsory DRAM bytes (weights, activations and outputs
    once) over the device time, as a fraction of the peak HBM bandwidth: the figure
    profilers report for a kernel, so the launch cost is left out of it (``time_us``
    adds the graph-mode launch cost of one kernel). ``vs_m1`` is the device time over that of the same GEMM at the smallest M;
    ``estimate_us`` is the mapper's estimate for the tiling it chose, ``tiles`` the
    compute tiles that get work and ``steps_per_tile`` the most tile steps one of them runs.
    """
    peak_bw = design.dram.bandwidth_bytes_per_s
    rows = []
    for n, k in shapes:
        for m in batches:
            r = simulate_gemm(m, n, k, design, launch="graph")
            reads, writes = r.spec.compulsory_bytes()
            t = r.plan.tiling
            rows.append({"m": m, "n": n, "k": k, "gemm": DECODE_NAMES.get((n, k), f"{n}x{k}"),
                         "kernel_us": r.device_time_s * 1e6,
                         "time_us": r.time_s * 1e6,
                         "memory_roofline_us": r.memory_time_s * 1e6,
                         "sustained_memory_us": r.memory_time_s * 1e6 / design.dram.bandwidth_efficiency,
                         "compute_roofline_us": r.compute_time_s * 1e6,
                         "roofline_us": r.roofline_time_s * 1e6,
                         "hbm_fraction": (reads + writes) / r.device_time_s / peak_bw,
                         "roofline_bound": r.roofline_bound, "estimate_us": t.estimated_time_s * 1e6,
                         "tiling": f"{t.tm}x{t.tn}x{t.tk}",
                         "tiles": sum(1 for steps in r.plan.steps if steps),
                         "steps_per_tile": max(len(steps) for steps in r.plan.steps)})
    df = pd.DataFrame(rows)
    first = df.groupby(["n", "k"])["kernel_us"].transform("first")
    df.insert(df.columns.get_loc("kernel_us") + 1, "vs_m1", df["kernel_us"] / first)
    return df


def decode_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per decode GEMM: the M = 1 time and HBM fraction, where the compute roofline overtakes the
    memory roofline, and how flat the simulated time stays below that point.

    ``flat_up_to_m`` is the largest M up to which every point stays within
    :data:`FLAT_TOLERANCE` of the M = 1 time; ``max_vs_m1_memory_bound`` the largest
    ``vs_m1`` over the points the roofline calls memory-bound.
    """
    rows = []
    for (n, k), part in df.groupby(["n", "k"], sort=False):
        part = part.sort_values("m")
        memory_bound = part[part.roofline_bound == "memory"]
        within = (part["vs_m1"] <= FLAT_TOLERANCE).to_numpy()
        flat_up_to = int(part["m"].iloc[int(np.argmin(within)) - 1]) if not within.all() else int(part["m"].max())
        rows.append({"gemm": part["gemm"].iloc[0], "n": n, "k": k, "m1_us": part["kernel_us"].iloc[0],
                     "m1_hbm_fraction": part["hbm_fraction"].iloc[0],
                     "last_memory_bound_m": int(memory_bound["m"].max()) if len(memory_bound) else 0,
                     "max_vs_m1_memory_bound": float(memory_bound["vs_m1"].max()) if len(memory_bound) else np.nan,
                     "flat_up_to_m": flat_up_to})
    return pd.DataFrame(rows)


def decode_markdown(df: pd.DataFrame, design: AcceleratorConfig) -> str:
    """The decode-curve report: device time and HBM fraction per batch for each GEMM, and the summary."""
    shapes = list(dict.fromkeys(zip(df.n, df.k)))
    wide = pd.DataFrame({"M": sorted(df.m.unique())})
    for n, k in shapes:
        part = df[(df.n == n) & (df.k == k)].set_index("m")
        wide[f"{n}x{k} us"] = wide["M"].map(part["kernel_us"]).round(1)
        wide[f"{n}x{k} HBM"] = wide["M"].map(part["hbm_fraction"]).round(2)
        wide[f"{n}x{k} roofline us"] = wide["M"].map(part["roofline_us"]).round(1)
    summary = decode_summary(df)
    summary["m1_us"] = summary["m1_us"].round(1)
    summary["m1_hbm_fraction"] = summary["m1_hbm_fraction"].round(2)
    summary["max_vs_m1_memory_bound"] = summary["max_vs_m1_memory_bound"].round(3)
    tilings = df.pivot_table(index="m", columns=["n", "k"], values="tiling", aggfunc="first")
    tiles = df.pivot_table(index="m", columns=["n", "k"], values="tiles", aggfunc="first")
    choice = pd.DataFrame({"M": tilings.index})
    for n, k in shapes:
        choice[f"{n}x{k}"] = [f"{t} ({c} tiles)" for t, c in zip(tilings[(n, k)], tiles[(n, k)])]
    return "\n".join([
        f"# {design.name}: decode GEMMs of Llama-2-7B against batch size", "",
        f"Design: `{design.name}` (DRAM `{design.dram.kind}`, {design.dram.bandwidth_bytes_per_s / 1e9:.0f} GB/s peak, "
        f"bandwidth_efficiency {design.dram.bandwidth_efficiency:g}; "
        f"{design.num_tiles} tiles). FP16 `[M, K] x [K, N]`; N x K per column group. "
        "us = simulated device time (no launch cost); HBM = compulsory bytes / device time / peak "
        "bandwidth; roofline = max(compulsory bytes / peak bandwidth, MACs / peak MAC rate).", "",
        markdown_table(wide), "",
        f"Summary (flat: within {FLAT_TOLERANCE:g} x the M = 1 time; memory-bound: by the roofline):", "",
        markdown_table(summary), "",
        "The mapper's tiling (tm x tn x tk) and the compute tiles that get work:", "",
        markdown_table(choice), ""])


#: Unfitted parameters varied by :func:`sensitivity`, and the GEMMs it runs.
SENSITIVITY_SHAPES: tuple[tuple[int, int, int], ...] = (
    (64, 12288, 12288), (256, 12288, 12288), (8192, 512, 512), (8192, 1024, 1024), (8192, 4096, 4096))


def _scaled_l2(design: AcceleratorConfig, factor: float) -> AcceleratorConfig:
    gbuf = design.global_buffer
    noc = design.noc
    return dataclasses.replace(
        design, global_buffer=dataclasses.replace(gbuf, banks=max(1, round(gbuf.banks * factor))),
        noc=dataclasses.replace(noc, link_bandwidth_bytes_per_s=noc.link_bandwidth_bytes_per_s * factor))


def sensitivity(design: AcceleratorConfig,
                shapes: Sequence[tuple[int, int, int]] = SENSITIVITY_SHAPES) -> pd.DataFrame:
    """Device time of a few GEMMs when an unfitted parameter is halved or doubled.

    Varies the DRAM latency (x0.5, x2) and the L2 bandwidth (global-buffer banks and
    interconnect links, x0.5). ``change_pct`` is relative to ``design`` itself.
    """
    variants = {
        "dram latency x0.5": dataclasses.replace(design, dram=dataclasses.replace(
            design.dram, latency_ns=design.dram.latency_ns * 0.5)),
        "dram latency x2": dataclasses.replace(design, dram=dataclasses.replace(
            design.dram, latency_ns=design.dram.latency_ns * 2)),
        "L2 bandwidth x0.5": _scaled_l2(design, 0.5),
    }
    rows = []
    for m, n, k in shapes:
        base = simulate_gemm(m, n, k, design).device_time_s
        for label, variant in variants.items():
            t = simulate_gemm(m, n, k, variant).device_time_s
            rows.append({"m": m, "n": n, "k": k, "variant": label, "base_ms": base * 1e3, "variant_ms": t * 1e3,
                         "change_pct": 100.0 * (t - base) / base})
    return pd.DataFrame(rows)


# ---- output files -------------------------------------------------------------------------------------------

def validation_markdown(df: pd.DataFrame, design: AcceleratorConfig, wall_s: float) -> str:
    """The validation report: table, error summary, parameters and the LLMCompass reference figures."""
    s = error_summary(df)
    cols = ["m", "n", "k", "split", "measured_ms", "simulated_ms", "kernel_ms", "error_pct", "roofline_bound"]
    return "\n".join([
        f"# {design.name}: simulated vs measured A100 GEMM times", "",
        f"Measured: {MEASUREMENT_SOURCE}.", "",
        f"Design: `{design.name}` (DRAM `{design.dram.kind}`, bandwidth_efficiency "
        f"{design.dram.bandwidth_efficiency:g}, eager launch cost {eager_overhead_ns(design):g} ns = "
        f"launch_ns {design.launch.launch_ns:g} + host_dispatch_ns {design.launch.host_dispatch_ns:g}). "
        "simulated_ms = kernel_ms (simulate_gemm device time) + eager launch cost; "
        "error_pct = 100 (simulated - measured) / measured.", "",
        markdown_table(df[cols]), "",
        f"Points: {s['points']}; median |error| {s['median_abs_error_pct']:.1f} %, "
        f"mean {s['mean_abs_error_pct']:.1f} %, max {s['max_abs_error_pct']:.1f} %.", "",
        "By split (fit = the rows --fit chooses on, check = held out):", "",
        markdown_table(split_summary(df).round(2)), "",
        f"For comparison, LLMCompass reports {LLMCOMPASS_OPERATOR_ERROR_PCT} % average error per operator "
        f"and {LLMCOMPASS_END_TO_END_ERROR_PCT} % end to end against A100.", "",
        f"Simulation wall time: {wall_s:.1f} s.", ""])


def plot_validation(df: pd.DataFrame, path: Path) -> None:
    """Two log-log panels: the M x 12288 x 12288 series against M, the 8192 x N x N series against N."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    series = [(df[(df.n == 12288) & (df.k == 12288)], "m", "M  (GEMM M x 12288 x 12288)"),
              (df[(df.m == 8192) & (df.n == df.k)], "n", "N = K  (GEMM 8192 x N x N)")]
    for ax, (part, x, label) in zip(axes, series):
        part = part.sort_values(x)
        ax.loglog(part[x], part["measured_ms"], "o", color="black", label="A100 measured")
        ax.loglog(part[x], part["simulated_ms"], "s-", color="tab:blue", mfc="none", label="a100-like simulated")
        ax.loglog(part[x], part["roofline_ms"], ":", color="gray", label="roofline (no overhead)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_ylabel("time (ms)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle("a100-like preset (FP16 GEMMs) against A100 measurements: time per GEMM", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_decode(df: pd.DataFrame, path: Path) -> None:
    """One log-log panel per decode GEMM: device time against batch M with the rooflines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(df.groupby(["n", "k"], sort=False))
    cols = 2 if len(groups) > 1 else 1
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, ((n, k), part) in zip(axes.flat, groups):
        part = part.sort_values("m")
        ax.loglog(part["m"], part["kernel_us"], "o-", color="tab:blue", label="simulated (device)")
        ax.loglog(part["m"], part["roofline_us"], "-", color="black", lw=1, label="roofline (peak)")
        ax.loglog(part["m"], part["sustained_memory_us"], "--", color="gray", lw=1,
                  label="memory at sustained bandwidth")
        ax.loglog(part["m"], part["compute_roofline_us"], ":", color="gray", lw=1, label="compute roofline")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{part['gemm'].iloc[0]}: N={n}, K={k}", fontsize=10)
        ax.set_xlabel("batch M (tokens)")
        ax.set_ylabel("device time (us)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("a100-like FP16 decode GEMMs of Llama-2-7B (device time, without launch cost)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(outdir: Path, selection: str = "default", do_fit: bool = False,
        progress: Callable[[str], None] | None = None,
        fit_efficiencies: Iterable[float] = FIT_EFFICIENCIES) -> dict:
    """Run the validation (and optionally the fit) and write every output file into ``outdir``.

    Returns
    -------
    dict
        ``summary`` (error figures), ``validation`` and ``decode`` DataFrames,
        ``best`` and ``grid`` when fitting, and the file paths written.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    points = measurements(selection)
    design = validation_design()
    out: dict = {"files": []}
    if do_fit:
        best, grid, kernels = fit(design, points, efficiencies=fit_efficiencies, progress=progress)
        grid.to_csv(outdir / "fit_grid.csv", index=False)
        kernels.to_csv(outdir / "fit_kernels.csv", index=False)
        out.update(best=best, grid=grid, kernels=kernels)
        out["files"] += [outdir / "fit_grid.csv", outdir / "fit_kernels.csv"]
        if progress is not None:
            progress(f"best: bandwidth_efficiency {best['bandwidth_efficiency']:.2f}, "
                     f"host_dispatch_ns {best['host_dispatch_ns']:.0f}, fit median |error| "
                     f"{best['median_abs_error_pct']:.2f} %, max {best['max_abs_error_pct']:.2f} %")
    start = time.perf_counter()
    df = validate(design, points, progress)
    wall = time.perf_counter() - start
    df.to_csv(outdir / "gemm_validation.csv", index=False)
    (outdir / "gemm_validation.md").write_text(validation_markdown(df, design, wall), encoding="utf-8")
    plot_validation(df, outdir / "gemm_validation.png")
    out["files"] += [outdir / "gemm_validation.csv", outdir / "gemm_validation.md", outdir / "gemm_validation.png"]

    decode_design = load_design("a100-like")
    batches = DECODE_BATCHES if selection != "subset" else (1, 16, 256)
    shapes = DECODE_SHAPES if selection != "subset" else DECODE_SHAPES[:1]
    dec = decode_curve(decode_design, shapes, batches)
    dec.to_csv(outdir / "decode_gemv.csv", index=False)
    (outdir / "decode_gemv.md").write_text(decode_markdown(dec, decode_design), encoding="utf-8")
    plot_decode(dec, outdir / "decode_gemv.png")
    out["files"] += [outdir / "decode_gemv.csv", outdir / "decode_gemv.md", outdir / "decode_gemv.png"]
    if selection != "subset":
        sens = sensitivity(design)
        sens.to_csv(outdir / "sensitivity.csv", index=False)
        out["files"].append(outdir / "sensitivity.csv")
        out["sensitivity"] = sens
    out.update(summary=error_summary(df), validation=df, decode=dec, wall_s=wall)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path, help="directory for the CSV, Markdown and PNG files")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--subset", action="store_true", help="a few small GEMMs only (seconds)")
    group.add_argument("--all", action="store_true", help="include the three largest GEMMs (minutes each)")
    parser.add_argument("--fit", action="store_true",
                        help="grid-search launch.host_dispatch_ns and bandwidth_efficiency on the fit rows first "
                             "and write fit_grid.csv")
    parser.add_argument("--fit-efficiencies", type=lambda t: tuple(float(v) for v in t.split(",")),
                        default=FIT_EFFICIENCIES, metavar="E1,E2,...",
                        help="bandwidth efficiencies the fit tries (default: the full grid, ~10 min)")
    args = parser.parse_args(argv)
    selection = "subset" if args.subset else "all" if args.all else "default"
    out = run(args.outdir, selection, args.fit, progress=lambda msg: print(msg, flush=True),
              fit_efficiencies=args.fit_efficiencies)
    s = out["summary"]
    print(f"{s['points']} GEMMs: median |error| {s['median_abs_error_pct']:.1f} %, "
          f"max {s['max_abs_error_pct']:.1f} % (LLMCompass: {LLMCOMPASS_OPERATOR_ERROR_PCT} % per operator); "
          f"simulation {out['wall_s']:.1f} s")
    for path in out["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
