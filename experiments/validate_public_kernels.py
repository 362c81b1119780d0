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
- ``tritonbench_h100_attention.csv``: fused-attention forward kernels (non-causal, head dim 128) on
  an H100 (tritonbench runs in pytorch/benchmark commit messages): ``sdpa``, Triton's tutorial
  FlashAttention-2, Colfax CUTLASS, FlashAttention-3. Compared with ``h100-like``: simulated = the
  device time of one non-causal fused attention op (``AttentionSpec(causal=False)``, batch x heads
  instances, the blocks ``choose_blocks`` picks), measured = the tritonbench latency, or
  4*b*h*s^2*d / tflops where the commit printed TFLOP/s only; TFLOP/s of both with that count.
  Shapes of more than ``FULL_ATTENTION_STEPS`` tile steps are simulated on fewer instances (whole
  waves of Q blocks over the tiles, at least ``MIN_WAVES``) and the time scaled by instances /
  simulated instances; ``attention_scaling_check`` gives the error of that scaling on the shapes
  simulated in full. Each op is also simulated with ``DRAM_WHAT_IF`` x the DRAM bandwidth
  (``dram_x8_tflops``, for 8): the rate of the tile rules once K/V re-reads from DRAM no longer bound it.

Nothing here is fitted: the presets' parameters come from their YAML sources. Error =
(simulated - measured) / measured. Writes ``public_kernels.csv`` (one row per point) and
``public_kernels.md`` (summary tables). ``--subset N`` takes N points spread evenly over each
GEMM data set and the N attention points of the fewest FLOPs (seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from math import ceil, gcd
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.errors import MixpeError, TraceError
from mixpe_sys.hw.config import AcceleratorConfig
from mixpe_sys.mapping.attention import choose_blocks, plan_attention
from mixpe_sys.mapping.gemm import peak_macs_per_s
from mixpe_sys.measurements import read_measurements
from mixpe_sys.report import markdown_table
from mixpe_sys.sim.plan_run import run_plan
from mixpe_sys.workload.attention import AttentionSpec

DATA = Path(__file__).resolve().parent / "data"
#: measured kernels shorter than this are reported apart: their time is mostly the fixed cost of
#: starting and finishing a kernel, which the presets do not model (docs/accuracy.md)
SHORT_KERNEL_US = 10.0
#: data sets of at most this many points also get a per-point table in the report
SMALL_SET_POINTS = 20
#: attention shapes of more tile steps than this are simulated on fewer instances and scaled (the
#: largest measured shape has 3.4e7 steps)
FULL_ATTENTION_STEPS = 600_000
#: waves of Q blocks over the tiles that a scaled attention run simulates at the least
MIN_WAVES = 8
#: the attention ops are also simulated with this many times the preset's DRAM bandwidth, so that the
#: K/V re-reads per Q block no longer bound them (what the tile rules give if K/V came from L2; the
#: same sensitivity as experiments/attention_fused.py); a what-if, not a fitted value
DRAM_WHAT_IF = 8


@dataclass(frozen=True)
class DataSet:
    """One published measurement file and the preset of the GPU it was measured on."""

    name: str
    file: str
    design: str
    rows: Callable[[Path, AcceleratorConfig, int | None], list[dict]] | None  # (file, preset, subset); None: not compared
    why_not: str = ""
    groups: tuple[str, ...] = ("kernel_length", "bound", "b")  # columns the report summarises by
    point_cols: tuple[str, ...] = ("point", "measured_us", "simulated_us", "error_pct", "bound")


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


def attention_points(path: Path) -> pd.DataFrame:
    """The rows of the tritonbench attention CSV with ``flops`` = 4*b*h*s^2*d and ``measured_us`` (the
    latency where printed, else flops / tflops)."""
    _, df = read_measurements(path, {"kernel": str, "source_commit": str, "batch": int, "heads": int,
                                     "seq_len": int, "head_dim": int, "tflops": float, "latency_ms": str})
    df = df.copy()
    df["flops"] = 4.0 * df["batch"] * df["heads"] * df["seq_len"] ** 2 * df["head_dim"]
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    latency_us = []
    for i, v in enumerate(df["latency_ms"]):
        try:
            ms = float(v) if str(v).strip() else float("nan")
        except ValueError:
            ms = -1.0
        if not ms > 0 and ms == ms:
            raise TraceError(f"{path}:{header + 2 + i}: field 'latency_ms': {v!r} is not a positive number or empty")
        latency_us.append(ms * 1e3)
    df["measured_us"] = [lat if lat == lat else f / (t * 1e12) * 1e6
                         for lat, f, t in zip(latency_us, df["flops"], df["tflops"])]
    df["latency_printed"] = [lat == lat for lat in latency_us]
    return df


def attention_spec(instances: int, seq_len: int, head_dim: int) -> AttentionSpec:
    """The non-causal FP16/BF16 self-attention of ``instances`` (sequence, head) pairs."""
    return AttentionSpec(instances=instances, q_tokens=seq_len, group=1, kv_len=seq_len, head_dim=head_dim,
                         q_bits=16, kv_bits=16, out_bits=16, causal=False)


def whole_wave_instances(q_blocks: int, tiles: int) -> int:
    """The fewest instances of ``q_blocks`` Q blocks each that fill whole waves of ``tiles`` tiles,
    ``MIN_WAVES`` waves at least."""
    wave = tiles // gcd(q_blocks, tiles)  # instances per whole number of waves
    return wave * ceil(MIN_WAVES * tiles / (wave * q_blocks))


def scaled_instances(instances: int, q_blocks: int, key_blocks: int, tiles: int) -> int:
    """Instances a run of ``instances`` x ``q_blocks`` Q blocks of ``key_blocks`` steps each simulates: all
    of them up to ``FULL_ATTENTION_STEPS`` steps, else :func:`whole_wave_instances` (at most ``instances``)."""
    if instances * q_blocks * key_blocks <= FULL_ATTENTION_STEPS:
        return instances
    return min(instances, whole_wave_instances(q_blocks, tiles))


def simulate_attention(instances: int, seq_len: int, head_dim: int, design: AcceleratorConfig,
                       simulated_instances: int | None = None) -> dict:
    """Device time (us) and figures of one non-causal fused attention op of ``instances`` pairs on ``design``.

    ``simulated_instances``: run that many instances (the blocks chosen for the whole op) and scale the
    time by ``instances / simulated_instances``; None: in full up to ``FULL_ATTENTION_STEPS`` tile steps,
    else the fewest instances giving whole waves of Q blocks over the tiles, ``MIN_WAVES`` at least.
    """
    spec = attention_spec(instances, seq_len, head_dim)
    blocks = choose_blocks(spec, design)
    nq, nkv = ceil(seq_len / blocks.rows), ceil(seq_len / blocks.keys)
    if simulated_instances is None:
        simulated_instances = scaled_instances(instances, nq, nkv, design.num_tiles)
    part = attention_spec(simulated_instances, seq_len, head_dim)
    peak = peak_macs_per_s(part.gemm_spec(), design)
    reads, writes = part.compulsory_bytes()
    cost = run_plan(plan_attention(part, design, blocks), design, macs=part.macs,
                    memory_time_ns=(reads + writes) * 1e9 / design.dram.bandwidth_bytes_per_s,
                    compute_time_ns=part.macs * 1e9 / peak, weight_bits=16, activation_bits=16,
                    activation_fp=True, record_steps=False).cost
    scale = instances / simulated_instances
    dram = (cost.dram_read_bytes + cost.dram_write_bytes) * scale
    sustained = design.dram.bandwidth_bytes_per_s * design.dram.bandwidth_efficiency
    return {"simulated_us": cost.device_time_ns * 1e-3 * scale, "simulated_instances": simulated_instances,
            "blocks": f"{blocks.rows}x{blocks.keys}", "bottleneck": cost.bottleneck, "bound": cost.roofline_bound.value,
            "dram_gb": dram * 1e-9, "dram_bound_us": dram / sustained * 1e6}


def attention_rows(path: Path, design: AcceleratorConfig, subset: int | None = None) -> list[dict]:
    """Each measured attention kernel against the simulated op of its shape (``subset``: the ``subset``
    points of the fewest FLOPs, as each shape's simulation time grows with them)."""
    df = attention_points(path)
    if subset is not None:
        df = df.sort_values("flops", kind="stable").head(subset)
    fast = dataclasses.replace(design, dram=dataclasses.replace(
        design.dram, bandwidth_bytes_per_s=DRAM_WHAT_IF * design.dram.bandwidth_bytes_per_s))
    sims: dict = {}
    rows = []
    for r in df.itertuples():
        shape = (int(r.batch) * int(r.heads), int(r.seq_len), int(r.head_dim))
        if shape not in sims:
            sims[shape] = (simulate_attention(*shape, design), simulate_attention(*shape, fast))
            print(f"attention {r.batch}x{r.heads}x{r.seq_len}x{r.head_dim}: {sims[shape][0]['simulated_us']:.1f} us, "
                  f"DRAM x {DRAM_WHAT_IF}: {sims[shape][1]['simulated_us']:.1f} us", file=sys.stderr)
        sim, what_if = sims[shape]
        rows.append({"point": f"{r.batch}x{r.heads}x{r.seq_len}x{r.head_dim}", "kernel": r.kernel,
                     "source_commit": r.source_commit, "b": int(r.batch), "heads": int(r.heads),
                     "seq_len": int(r.seq_len), "head_dim": int(r.head_dim), "measured_us": float(r.measured_us),
                     "latency_printed": bool(r.latency_printed), "simulated_us": sim["simulated_us"],
                     "error_pct": 100.0 * (sim["simulated_us"] - r.measured_us) / r.measured_us,
                     "measured_tflops": r.flops / r.measured_us * 1e-6,
                     "simulated_tflops": r.flops / sim["simulated_us"] * 1e-6,
                     "dram_bound_tflops": r.flops / sim["dram_bound_us"] * 1e-6,
                     f"dram_x{DRAM_WHAT_IF}_tflops": r.flops / what_if["simulated_us"] * 1e-6,
                     f"dram_x{DRAM_WHAT_IF}_bottleneck": what_if["bottleneck"],
                     **{k: sim[k] for k in ("simulated_instances", "blocks", "bottleneck", "bound", "dram_gb")}})
    return rows


def attention_scaling_check(path: Path, design: AcceleratorConfig, largest: int = 2) -> pd.DataFrame:
    """The scaling of :func:`simulate_attention` checked on the ``largest`` shapes it simulates in full: the
    time from the fewest instances of whole waves (``MIN_WAVES`` at least), scaled, against the full run."""
    df = attention_points(path).drop_duplicates(["batch", "heads", "seq_len", "head_dim"])
    out = []
    for r in df.sort_values("flops").itertuples():
        instances, s, d = int(r.batch) * int(r.heads), int(r.seq_len), int(r.head_dim)
        blocks = choose_blocks(attention_spec(instances, s, d), design)
        nq, nkv = ceil(s / blocks.rows), ceil(s / blocks.keys)
        few = whole_wave_instances(nq, design.num_tiles)
        if instances * nq * nkv <= FULL_ATTENTION_STEPS and few < instances:
            out.append((r, instances, s, d, few))
    rows = []
    for r, instances, s, d, few in out[-largest:]:
        full = simulate_attention(instances, s, d, design, instances)["simulated_us"]
        scaled = simulate_attention(instances, s, d, design, few)["simulated_us"]
        rows.append({"point": f"{r.batch}x{r.heads}x{s}x{d}", "instances": instances, "simulated_instances": few,
                     "full_us": full, "scaled_us": scaled, "scaling_error_pct": 100.0 * (scaled - full) / full})
    return pd.DataFrame(rows)


DATASETS = (
    DataSet("xla-h100-bf16-gemm", "xla_h100_bf16_gemm.csv", "h100-like",
            lambda path, design, subset: gemm_rows(spread(xla_gemm_points(path), subset), design)),
    DataSet("vllm-h100-bf16-linear", "vllm_h100_bf16_linear.csv", "h100-like",
            lambda path, design, subset: gemm_rows(spread(linear_points(path), subset), design, with_launch=True)),
    DataSet("tritonbench-h100-attention", "tritonbench_h100_attention.csv", "h100-like", attention_rows,
            groups=("kernel", "source_commit", "seq_len", "bottleneck"),
            point_cols=("point", "kernel", "measured_us", "simulated_us", "error_pct", "measured_tflops",
                        "simulated_tflops", "dram_bound_tflops", f"dram_x{DRAM_WHAT_IF}_tflops",
                        "simulated_instances")),
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
                  markdown_table(summarise(df).round(1)), ""]
        titles = {"kernel_length": f"By measured kernel length (short: under {SHORT_KERNEL_US:g} us):",
                  "bound": "By the preset's roofline bound:", "b": "By batch b:", "kernel": "By measured kernel:",
                  "source_commit": "By source commit:", "seq_len": "By sequence length:",
                  "bottleneck": "By the simulated op's busiest unit:"}
        for col in ds.groups:
            if col in ("kernel_length", "bound", "kernel") or df[col].nunique() > 1:
                lines += [titles[col], "", markdown_table(summarise(df, col).round(1)), ""]
        if len(df) <= SMALL_SET_POINTS or "kernel" in ds.groups:
            lines += ["Per point:", "", markdown_table(df[list(ds.point_cols)].round(3)), ""]
        if ds.rows is attention_rows and subset is None:
            check = attention_scaling_check(data / ds.file, design)
            lines += ["Scaled runs (fewer instances, time x instances / simulated instances) against full runs:",
                      "", markdown_table(check.round(3)), ""]
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
    try:
        out = run(args.outdir, args.subset, args.design)
    except MixpeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(out["points"]):
        print(summarise(out["points"], "dataset").round(1).to_string(index=False))
    for path in out["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
