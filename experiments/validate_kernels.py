"""Compare a GPU preset with kernel-level measurements (CUDA events), such as experiments/measure_h200.py's.

Usage::

    python experiments/validate_kernels.py OUTDIR [--measured DIR] [--design h200-like] [--max-m 4096]

``DIR`` (default ``experiments/data/h200``) holds the CSV files measure_h200.py writes.
Per measured point:

- ``gemm.csv`` (FP16 and BF16 run at the same tensor-core rate): simulated =
  ``simulate_gemm(..., launch="graph").time_s`` (device time + ``launch.graph_launch_ns``)
  against ``graph_us`` (R calls replayed from one CUDA graph, per call, weights read from HBM);
- ``int4_gemm.csv``: the same for ``W4A16`` with groups of 128 and BF16 scales and zeros
  (``torch._weight_int4pack_mm``'s layout) against its ``graph_us``;
- ``copy.csv``: the preset's sustained HBM bandwidth (peak x ``bandwidth_efficiency``) against
  the copy bandwidth measured on the largest copies;
- ``launch.csv``: the preset's ``graph_launch_ns`` against the per-kernel time of a one-element
  kernel in a replayed graph (kernel + gap: an upper bound of the gap), and the simulated eager
  time of a 64 x 64 x 64 GEMM against its host-timed ``host_sync_us``.

``sdpa.csv`` is listed but not compared here (the public H100 attention kernels are compared with the fused
attention op by ``experiments/validate_public_kernels.py``).
Error = (simulated - measured) / measured. Writes ``kernel_validation.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.hw.config import AcceleratorConfig
from mixpe_sys.measurements import read_measurements
from mixpe_sys.report import markdown_table
from mixpe_sys.workload.quant import QuantScheme

DEFAULT_MEASURED = Path(__file__).resolve().parent / "data" / "h200"
#: torch._weight_int4pack_mm: INT4 weights in groups of 128 along K, a BF16 scale and a BF16 zero per group
INT4_QUANT = QuantScheme.parse("W4A16", group_size=128, scale_bits=16, zero_bits=16)


def _row(kind: str, label: str, measured_us: float, simulated_us: float, **extra) -> dict:
    return {"kind": kind, "point": label, "measured_us": measured_us, "simulated_us": simulated_us,
            "error_pct": 100.0 * (simulated_us - measured_us) / measured_us, **extra}


def gemm_rows(design: AcceleratorConfig, measured: Path, max_m: int) -> list[dict]:
    rows = []
    for name, quant in (("gemm.csv", None), ("int4_gemm.csv", INT4_QUANT)):
        path = measured / name
        if not path.exists():
            continue
        _, df = read_measurements(path, {"m": int, "n": int, "k": int, "graph_us": float})
        for r in df.itertuples():
            if r.m > max_m:
                continue
            sim = simulate_gemm(int(r.m), int(r.n), int(r.k), design, quant=quant, launch="graph")
            label = f"{getattr(r, 'dtype', 'w4a16-bf16')} {r.m}x{r.n}x{r.k}"
            rows.append(_row("int4_gemm" if quant else "gemm", label, float(r.graph_us), sim.time_s * 1e6,
                             m=int(r.m), n=int(r.n), k=int(r.k), bound=sim.roofline_bound,
                             device_us=sim.device_time_s * 1e6))
    return rows


def copy_rows(design: AcceleratorConfig, measured: Path) -> list[dict]:
    path = measured / "copy.csv"
    if not path.exists():
        return []
    _, df = read_measurements(path, {"bytes_copied": int, "time_us": float})
    sustained = design.dram.bandwidth_bytes_per_s * design.dram.bandwidth_efficiency
    rows = []
    for r in df.itertuples():
        moved = 2 * int(r.bytes_copied)  # read and written
        # the time the preset's sustained bandwidth needs for the same bytes
        rows.append(_row("copy", f"{int(r.bytes_copied) / 2**20:.0f} MiB", float(r.time_us),
                         moved / sustained * 1e6, measured_gb_per_s=moved / (float(r.time_us) * 1e-6) / 1e9,
                         sustained_gb_per_s=sustained / 1e9))
    return rows


def launch_rows(design: AcceleratorConfig, measured: Path) -> list[dict]:
    path = measured / "launch.csv"
    if not path.exists() or design.launch is None:
        return []
    _, df = read_measurements(path, {"graph_us": float, "host_sync_us": float})
    rows = []
    for r in df.itertuples():
        if r.kernel == "add_1_element":
            rows.append(_row("launch_graph", "1-element kernel in a graph (kernel + gap)", float(r.graph_us),
                             design.launch.graph_launch_ns * 1e-3))
        elif r.kernel.startswith("matmul_64x64x64"):
            sim = simulate_gemm(64, 64, 64, design, launch="eager")
            rows.append(_row("launch_eager", "64x64x64 matmul, host-timed", float(r.host_sync_us), sim.time_s * 1e6))
    return rows


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Median, mean and max |error| (%) per kind of measurement."""
    out = []
    for kind, part in df.groupby("kind", sort=False):
        err = part["error_pct"].abs()
        out.append({"kind": kind, "points": len(part), "median_abs_error_pct": err.median(),
                    "mean_abs_error_pct": err.mean(), "max_abs_error_pct": err.max()})
    return pd.DataFrame(out)


def run(outdir: Path, measured: Path = DEFAULT_MEASURED, design_name: str = "h200-like",
        max_m: int = 4096) -> dict:
    """Compare ``design_name`` with the measurements in ``measured``; write the report into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    design = load_design(design_name)
    rows = (gemm_rows(design, measured, max_m) + copy_rows(design, measured) + launch_rows(design, measured))
    df = pd.DataFrame(rows, columns=None if rows else ["kind", "point", "measured_us", "simulated_us", "error_pct"])
    summary = summarise(df) if len(df) else pd.DataFrame()
    lines = [f"# {design.name} against kernel measurements", "",
             f"Measurements: `{measured}`. Simulated with `{design.name}`; "
             "error = (simulated - measured) / measured.", ""]
    if not len(df):
        lines += ["No measurement files found: run `python experiments/measure_h200.py DIR` on an H200 and pass "
                  "`--measured DIR`.", ""]
    else:
        lines += ["Summary:", "", markdown_table(summary.round(2)), "", markdown_table(df.round(3)), ""]
    if (measured / "sdpa.csv").exists():
        lines += ["`sdpa.csv` (fused attention) is not compared: the simulator has no fused attention mapping "
                  "yet.", ""]
    df.to_csv(outdir / "kernel_validation.csv", index=False)
    (outdir / "kernel_validation.md").write_text("\n".join(lines), encoding="utf-8")
    return {"points": df, "summary": summary,
            "files": [outdir / "kernel_validation.csv", outdir / "kernel_validation.md"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--measured", type=Path, default=DEFAULT_MEASURED, help="folder of measure_h200.py CSVs")
    parser.add_argument("--design", default="h200-like", help="the preset of the measured GPU")
    parser.add_argument("--max-m", type=int, default=4096, help="skip GEMMs with more rows (simulation time)")
    args = parser.parse_args(argv)
    out = run(args.outdir, args.measured, args.design, args.max_m)
    if len(out["summary"]):
        print(out["summary"].to_string(index=False))
    else:
        print(f"no measurements in {args.measured}")
    for path in out["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
