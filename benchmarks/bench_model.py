"""Wall-clock cost of model runs on the op engine.

Times :func:`mixpe_sys.sim.model.simulate_model` (full workload, batch 1,
prompt 2048, 256 generated tokens) for Llama-2-7B and Llama-2-70B on
``mixpe-w4a8``, and shows that the cost follows the number of *distinct* op
shapes, not the number of ops: a 2-layer variant of each model has the same
distinct ops as the full model, so it costs about the same wall time although
it has 16x (40x) fewer ops.

Run pinned to one core for stable figures::

    taskset -c 0 python benchmarks/bench_model.py [--prompt 2048] [--generate 256] [--repeat 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from mixpe_sys import load_design
from mixpe_sys.hw.precision import run_quant
from mixpe_sys.sim.model import simulate_model
from mixpe_sys.workload.models import load_model


def bench(model, design, *, prompt: int, generate: int, repeat: int) -> dict:
    """Best wall time of ``repeat`` runs (s) and the run's counters."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = simulate_model(model, design, batch=1, prompt=prompt, generate=generate, quant=run_quant(design),
                                progress=False)
        best = min(best, time.perf_counter() - t0)
    return {"model": model.name, "layers": model.num_layers, "wall_s": best, "ops": len(result.ops),
            "simulated": result.simulated_ops, "distinct": result.distinct_ops,
            "sim_total_s": result.total_time_s, "prefill_s": result.phase_time_s("prefill"),
            "tpot_s": result.to_dict()["time_per_output_token_s"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--generate", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the best wall time is kept")
    ap.add_argument("--models", nargs="+", default=["llama-2-7b", "llama-2-70b"])
    args = ap.parse_args(argv)

    design = load_design("mixpe-w4a8")
    print(f"design {design.name}, batch 1, prompt {args.prompt}, generate {args.generate}, full workload")
    header = (f"{'model':<22}{'layers':>7}{'wall s':>9}{'ops':>9}{'simulated':>11}{'ops/wall s':>12}"
              f"{'sim total s':>13}{'prefill s':>11}{'TPOT ms':>9}")
    print(header)
    print("-" * len(header))
    rows = []
    for name in args.models:
        full = load_model(name)
        two = dataclasses.replace(full, name=f"{name}[2 layers]", num_layers=2)
        for spec in (full, two):
            r = bench(spec, design, prompt=args.prompt, generate=args.generate, repeat=args.repeat)
            rows.append(r)
            print(f"{r['model']:<22}{r['layers']:>7}{r['wall_s']:>9.2f}{r['ops']:>9}{r['simulated']:>11}"
                  f"{r['ops'] / r['wall_s']:>12.0f}{r['sim_total_s']:>13.4f}{r['prefill_s']:>11.4f}"
                  f"{r['tpot_s'] * 1e3:>9.3f}", flush=True)
    print()
    for full, two in zip(rows[::2], rows[1::2]):
        print(f"{full['model']}: {full['ops'] / two['ops']:.1f}x the ops of its 2-layer variant, "
              f"{full['simulated']} vs {two['simulated']} simulated ops, "
              f"{full['wall_s'] / two['wall_s']:.2f}x the wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
