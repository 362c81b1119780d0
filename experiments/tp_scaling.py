"""Tensor-parallel scaling of Llama-2-7B and Llama-2-70B batch-1 decode on eight A100 80 GB chips,
against gpt-fast's published tokens per second.

    python experiments/tp_scaling.py OUTDIR [--quick]

Measured (``experiments/data/gptfast_a100_tp.csv``): pytorch-labs/gpt-fast README, "Benchmarks,
Tensor Parallelism": batch 1, a 5-token prompt, bf16 weights, ``torch.compile`` with CUDA graphs,
on an 8 x A100-80GB machine power limited to 330 W with a hybrid cube-mesh NVLink topology.
Llama-2-7B: 1/2/4/8 GPUs 104.9/168.84/254.02/328.43 tokens/s; Llama-2-70B (does not fit one GPU):
2/4/8 GPUs 21.32/38.01/62.50 tokens/s.

Simulated: the same request (prompt 5, ``GENERATE`` new tokens, FP16 weights, ``graph`` launch
mode) on ``dgx-a100`` with ``a100-80gb-like`` chips at each degree, and again with the chips' sustained
HBM rate set to the 1,700 GB/s the gpt-fast README reports as the empirical peak of its power-limited
GPUs ("seems like peak bandwidth is about 1700 GB/s"; the preset sustains 2,039 x 0.92 = 1,876 GB/s). The DGX's NVSwitch fabric is
not gpt-fast's cube mesh; at batch 1 an all-reduce carries one hidden vector (16 KiB for 70B), so
its time is the per-step latencies, which both fabrics pay once per ring step. Each row gives the
time per output token, its collective share, the weight-streaming bound (one chip's weight bytes
at the chip's sustained HBM rate), the error against gpt-fast and both speed-ups over the smallest
degree. Writes ``tp_scaling.csv`` and ``tp_scaling.md``; ``--quick`` runs 70B at TP 8 only, with
8 generated tokens.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import pandas as pd

from mixpe_sys import load_design, simulate
from mixpe_sys.designs import design_from_data
from mixpe_sys.hw.precision import run_quant
from mixpe_sys.report import markdown_table
from mixpe_sys.system import load_system
from mixpe_sys.system.parallel import plan_replica
from mixpe_sys.workload.models import load_model

DATA = Path(__file__).resolve().parent / "data" / "gptfast_a100_tp.csv"
#: gpt-fast's generate.py default (--max_new_tokens 200)
GENERATE = 200
PROMPT = 5
#: gpt-fast README: "Empirically, seems like peak bandwidth is about 1700 GB/s" (A100 80 GB at 330 W)
POWER_LIMITED_BYTES_PER_S = 1700e9


def power_limited_chip():
    """``a100-80gb-like`` sustaining the 1,700 GB/s gpt-fast measured on its 330 W A100s."""
    base = load_design("a100-80gb-like")
    return design_from_data({"extends": "a100-80gb-like", "name": "a100-80gb-330w",
                             "dram": {"preset": "hbm2e-a100-80gb",
                                      "bandwidth_efficiency": POWER_LIMITED_BYTES_PER_S
                                      / base.dram.bandwidth_bytes_per_s}})


def measured() -> pd.DataFrame:
    """gpt-fast's published rows (model, gpus, tokens_per_s)."""
    return pd.read_csv(DATA, comment="#")


def simulate_row(model_name: str, tp: int, generate: int, chip) -> dict:
    """One simulated configuration on ``chip``: time per output token and its parts."""
    dgx = dataclasses.replace(load_system("dgx-a100"), chip=chip).with_parallelism(tp, 1)
    r = simulate(model_name, chip, batch=1, prompt=PROMPT, generate=generate,
                 system=dgx if tp > 1 else None, progress=False)
    d = r.to_dict()
    tpot = d["time_per_output_token_s"]
    steps = generate - 1
    coll = 0.0
    if tp > 1:
        c = r.collectives
        coll = float(c.loc[c["phase"] == "decode", "time_s"].sum()) / steps
    model = load_model(model_name)
    plan = plan_replica(model, dgx.config)
    weight_bytes = plan.weight_bytes_per_chip(plan.stages[0], run_quant(chip))
    bw = chip.dram.bandwidth_bytes_per_s * chip.dram.bandwidth_efficiency
    return {"model": model_name, "gpus": tp, "simulated_tpot_ms": tpot * 1e3,
            "collective_ms_per_token": coll * 1e3, "weight_stream_bound_ms": weight_bytes / bw * 1e3,
            "simulated_tokens_per_s": 1.0 / tpot}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--quick", action="store_true", help="Llama-2-70B at TP 8 only, 8 generated tokens")
    args = p.parse_args(argv)
    meas = measured()
    if args.quick:
        meas = meas[(meas.model == "llama-2-70b") & (meas.gpus == 8)]
    generate = 8 if args.quick else GENERATE
    chip, limited = load_design("a100-80gb-like"), power_limited_chip()
    rows = []
    for m, g, t in meas[["model", "gpus", "tokens_per_s"]].itertuples(index=False):
        at_1700 = simulate_row(m, int(g), generate, limited)["simulated_tokens_per_s"]
        rows.append({**simulate_row(m, int(g), generate, chip), "simulated_tokens_per_s_at_1700gbps": at_1700,
                     "measured_tokens_per_s": t})
    df = pd.DataFrame(rows)
    df["error_at_1700gbps_pct"] = (df.simulated_tokens_per_s_at_1700gbps / df.measured_tokens_per_s - 1) * 100
    df["error_pct"] = (df.simulated_tokens_per_s / df.measured_tokens_per_s - 1) * 100
    for name, grp in df.groupby("model"):
        first = grp.index[0]
        df.loc[grp.index, "simulated_speedup"] = grp.simulated_tokens_per_s / df.simulated_tokens_per_s[first]
        df.loc[grp.index, "measured_speedup"] = grp.measured_tokens_per_s / df.measured_tokens_per_s[first]
    args.outdir.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.outdir / "tp_scaling.csv", index=False)
    (args.outdir / "tp_scaling.md").write_text(markdown_table(df) + "\n", encoding="utf-8")
    print(markdown_table(df))
    return 0


if __name__ == "__main__":
    sys.exit(main())
