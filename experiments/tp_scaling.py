"""Tensor-parallel scaling of Llama-2-70B decode on A100 systems, with its decomposition.

Usage::

    python experiments/tp_scaling.py OUTDIR [--quick]

Runs Llama-2-70B (FP16) on the ``dgx-a100`` system (8 x ``a100-like``, A100 40 GB, NVSwitch at
300 GB/s per GPU per direction) at every tensor-parallel degree that fits, and on the same system
with A100 80 GB chips (``a100-like`` with the ``hbm2e-a100-80gb`` DRAM preset, as the comment at
the top of ``designs/a100-like.yaml`` describes), batch 1 and 16, prompt 128, two decode steps.
For each it writes the time per output token and its parts: the chip's fixed per-op overhead
(``op_overhead_ns`` x ops per token), the all-reduce and all-gather time, and the rest (device
time of the ops), and the lower bound of streaming one chip's weights once at the sustained HBM
bandwidth. Writes ``tp_scaling.csv`` and ``tp_scaling.md``; about 1 minute (``--quick``: batch 1
on the 80 GB system only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from mixpe_sys.cli import cpu_count
from mixpe_sys.designs import design_from_data
from mixpe_sys.errors import FitError
from mixpe_sys.report import markdown_table
from mixpe_sys.system import load_system, simulate_system
from mixpe_sys.system.parallel import plan_replica
from mixpe_sys.system.presets import System
from mixpe_sys.workload.models import load_model


def a100_80gb_system() -> System:
    """dgx-a100 with A100 80 GB chips (the 640 GB DGX A100)."""
    base = load_system("dgx-a100")
    chip = design_from_data({"extends": "a100-like", "name": "a100-80gb-like",
                             "dram": {"preset": "hbm2e-a100-80gb", "bandwidth_efficiency": 0.88}})
    return System(base.config.replace(name="dgx-a100-640gb", design=chip.name), chip, base.graph)


def row(model, system: System, tp: int, batch: int) -> dict:
    """One run's figures (or why it does not fit)."""
    s = system.with_parallelism(tp=tp)
    out = {"system": s.name, "chip": s.chip.name, "tp": tp, "batch": batch}
    try:
        r = simulate_system(model, s, batch=batch, prompt=128, generate=3, workers=cpu_count())
    except FitError as exc:
        return {**out, "note": str(exc)}
    d = r.to_dict()
    steps = 2
    tpot = d["time_per_output_token_s"]
    plan = plan_replica(model, s.config)
    weights = plan.weight_bytes_per_chip(plan.stages[0], s.chip.quant)
    bw = s.chip.dram.bandwidth_bytes_per_s * s.chip.dram.bandwidth_efficiency
    ops_per_token = 13 * model.num_layers + 2  # one decode step of the full workload
    decode_coll = r.collectives[r.collectives["phase"] == "decode"]["time_s"].sum() / steps
    overhead = ops_per_token * s.chip.op_overhead_ns * 1e-9
    return {**out, "tpot_ms": tpot * 1e3, "overhead_ms": overhead * 1e3, "collective_ms": decode_coll * 1e3,
            "device_ms": (tpot - overhead - decode_coll) * 1e3, "weight_stream_bound_ms": weights / bw * 1e3,
            "memory_per_chip_gb": d["memory_per_chip_bytes"] / 1e9, "note": ""}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir")
    p.add_argument("--quick", action="store_true", help="batch 1 on the 80 GB system only")
    args = p.parse_args(argv)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model("llama-2-70b")
    systems = [a100_80gb_system()] if args.quick else [load_system("dgx-a100"), a100_80gb_system()]
    batches = [1] if args.quick else [1, 16]
    rows = [row(model, s, tp, b) for s in systems for b in batches for tp in (1, 2, 4, 8)]
    df = pd.DataFrame(rows)
    for s in df["system"].unique():  # speed-up against the smallest tp that fits, per system and batch
        for b in batches:
            sel = (df["system"] == s) & (df["batch"] == b) & df["tpot_ms"].notna()
            if sel.any():
                first = df.loc[sel, "tpot_ms"].iloc[0]
                df.loc[sel, "speedup_vs_smallest_tp"] = first / df.loc[sel, "tpot_ms"]
    df.to_csv(out / "tp_scaling.csv", index=False)
    (out / "tp_scaling.md").write_text(markdown_table(df.drop(columns=["note"]).dropna(subset=["tpot_ms"]))
                                       + "\n", encoding="utf-8")
    print(df.drop(columns=["note"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
