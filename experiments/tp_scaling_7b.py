"""Llama-2-7B FP16, batch 1, 128 prompt tokens and 20 generated, on 1, 2, 4 and 8 A100 80 GB chips of a
DGX A100 (NVLink3 switch, tensor parallel), against NVIDIA's published NeMo/TensorRT-LLM latencies.

    python experiments/tp_scaling_7b.py OUTDIR

Measured: NVIDIA NeMo Framework user guide, "Llama-2 Results, Inference Performance", chatbot
conversation configuration (input 128, output 20 tokens, batch 1, A100 80GB SXM4, TP 1..8, PP 1),
average latency of a whole request in ms: TP1 234.0, TP2 171.7, TP4 143.7, TP8 136.5
(https://docs.nvidia.com/nemo-framework/user-guide/latest/performance/llama.html). Writes
tp_scaling_7b.csv and .md: simulated and measured latency and speed-up over one GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd

from mixpe_sys import load_design, simulate
from mixpe_sys.report import markdown_table
from mixpe_sys.system import load_system

MEASURED_MS = {1: 234.0, 2: 171.7, 4: 143.7, 8: 136.5}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path)
    args = p.parse_args()
    chip = load_design("a100-80gb-like")
    dgx = dataclasses.replace(load_system("dgx-a100"), chip=chip)
    rows = []
    for tp, measured in MEASURED_MS.items():
        system = dgx.with_parallelism(tp, 1) if tp > 1 else None
        r = simulate("llama-2-7b", chip, batch=1, prompt=128, generate=20, system=system, progress=False)
        rows.append({"tp": tp, "simulated_ms": r.to_dict()["total_time_s"] * 1e3, "measured_ms": measured})
    df = pd.DataFrame(rows)
    df["simulated_speedup"] = df.simulated_ms.iloc[0] / df.simulated_ms
    df["measured_speedup"] = df.measured_ms.iloc[0] / df.measured_ms
    df["error_pct"] = (df.simulated_ms / df.measured_ms - 1) * 100
    args.outdir.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.outdir / "tp_scaling_7b.csv", index=False)
    (args.outdir / "tp_scaling_7b.md").write_text(markdown_table(df) + "\n")
    print(markdown_table(df))


if __name__ == "__main__":
    main()
