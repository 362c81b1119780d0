"""Reports: pure functions from per-op rows to per-layer, per-phase and summary figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SUM_COLUMNS = ["time_s", "device_time_s", "cycles", "compute_cycles", "stall_cycles", "dequant_cycles", "macs",
               "dram_read_bytes", "dram_write_bytes", "sram_read_bytes", "sram_write_bytes", "memory_time_s",
               "compute_time_s", "energy_j", "static_energy_j", "dram_energy_j", "buffer_energy_j", "core_energy_j"]


def _sum_columns(ops: pd.DataFrame) -> list[str]:
    return [c for c in SUM_COLUMNS if c in ops.columns]


def _memory_bound_time(ops: pd.DataFrame) -> pd.Series:
    return ops["time_s"].where(ops["roofline_bound"] == "memory", 0.0)


def _bottleneck(df: pd.DataFrame, keys: list[str], index: pd.Index) -> pd.DataFrame:
    """Per group of ``keys`` (rows of ``index``): the unit that limited most of the group's time
    (the first such, in order of appearance; ``none`` for a group without one) and the share of
    the group's time it limited.

    One groupby over (group, unit) sums each unit's time in each group, row by row in order, as a
    groupby over the units of that group alone would.
    """
    sums = df.groupby(keys + ["bottleneck"], sort=False)["time_s"].sum()
    per_group: dict = {}
    for key, t in zip(sums.index, sums.to_numpy()):
        units, times = per_group.setdefault(key[0] if len(keys) == 1 else key[:-1], ([], []))
        units.append(key[-1])
        times.append(t)
    bottleneck, share = [], []
    for key in index:
        units, times = per_group.get(key, ((), ()))
        if not units:
            bottleneck.append("none")
            share.append(0.0)
            continue
        total = pd.Series(times, dtype=np.float64).sum()
        most = max(times)
        bottleneck.append(units[times.index(most)])
        share.append(most / total if total > 0 else 0.0)
    return pd.DataFrame({"bottleneck": bottleneck, "bottleneck_time_share": share}, index=index)


def layers_report(ops: pd.DataFrame) -> pd.DataFrame:
    """One row per (phase, step, layer): summed figures, start/end, memory-bound share of time."""
    df = ops.assign(memory_bound_time_s=_memory_bound_time(ops))
    g = df.groupby(["phase", "step", "layer"], sort=False)
    out = g[_sum_columns(ops) + ["memory_bound_time_s"]].sum()
    out["start_s"] = g["start_s"].min()
    out["end_s"] = g["end_s"].max()
    out["ops"] = g.size()
    out["memory_bound_share"] = out["memory_bound_time_s"] / out["time_s"].where(out["time_s"] > 0)
    out = out.join(_bottleneck(df, ["phase", "step", "layer"], out.index))
    return out.reset_index()


def phases_report(ops: pd.DataFrame) -> pd.DataFrame:
    """One row per phase (prefill, decode): summed figures and the memory-bound share of time."""
    df = ops.assign(memory_bound_time_s=_memory_bound_time(ops))
    g = df.groupby("phase", sort=False)
    out = g[_sum_columns(ops) + ["memory_bound_time_s"]].sum()
    out["ops"] = g.size()
    out["steps"] = g["step"].nunique()
    out["memory_bound_share"] = out["memory_bound_time_s"] / out["time_s"].where(out["time_s"] > 0)
    out = out.join(_bottleneck(df, ["phase"], out.index))
    return out.reset_index()


def chrome_trace(ops: pd.DataFrame, *, process_name: str = "accelerator") -> dict[str, Any]:
    """The op timeline in Chrome trace event format (open in Perfetto or chrome://tracing).

    Array ops go on one track, vector-unit ops on another; times in microseconds.
    """
    array_kinds = {"linear", "dequant_gemm", "attn_qk", "attn_pv", "attention"}
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": process_name}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 0, "args": {"name": "PE arrays"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 1, "args": {"name": "vector units"}},
    ]
    for row in ops.itertuples(index=False):
        events.append({"name": row.name, "cat": row.kind, "ph": "X", "pid": 0,
                       "tid": 0 if row.kind in array_kinds else 1,
                       "ts": row.start_s * 1e6, "dur": row.time_s * 1e6,
                       "args": {"phase": row.phase, "layer": int(row.layer), "step": int(row.step),
                                "roofline_bound": row.roofline_bound, "bottleneck": row.bottleneck,
                                "utilization": float(row.utilization),
                                "dram_bytes": int(row.dram_read_bytes + row.dram_write_bytes)}})
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def write_reports(outdir: str | Path, ops: pd.DataFrame, layers: pd.DataFrame, phases: pd.DataFrame,
                  summary: dict[str, Any] | None = None, utilization: pd.DataFrame | None = None) -> list[Path]:
    """Write ops.csv, layers.csv, phases.csv, timeline.json (and summary.json, utilization.csv) into ``outdir``.

    Each file is written to a temporary name and renamed, so a file is either
    complete or absent.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []

    def atomic(name: str, write) -> None:
        tmp = outdir / f".{name}.tmp"
        write(tmp)
        tmp.replace(outdir / name)
        written.append(outdir / name)

    atomic("ops.csv", lambda p: ops.to_csv(p, index=False))
    atomic("layers.csv", lambda p: layers.to_csv(p, index=False))
    atomic("phases.csv", lambda p: phases.to_csv(p, index=False))
    atomic("timeline.json", lambda p: p.write_text(json.dumps(chrome_trace(ops))))
    if utilization is not None:
        atomic("utilization.csv", lambda p: utilization.to_csv(p, index=False))
    if summary is not None:
        atomic("summary.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    return written


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """``df`` as a GitHub Markdown table (floats formatted with ``floatfmt``)."""
    def cell(v: Any) -> str:
        return floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def utilization_frame(busy_ns: dict[str, float], device_ns: float) -> pd.DataFrame:
    """``unit, busy_s, utilization`` rows, busiest first: each unit class's busy time over a device time."""
    units = sorted(busy_ns, key=lambda u: -busy_ns[u])
    return pd.DataFrame({"unit": units, "busy_s": [busy_ns[u] * 1e-9 for u in units],
                         "utilization": [busy_ns[u] / device_ns if device_ns else 0.0 for u in units]})
