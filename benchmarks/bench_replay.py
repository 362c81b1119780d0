"""Wall-clock cost of serving replays of the Azure LLM inference traces.

Replays the full Azure 2023 code trace (8,819 requests) and conversation
trace (19,366 requests) on Llama-2-7B with ``mixpe-w4a8`` (continuous
batching, max batch 32, 4,096 batched tokens) and prints, per trace and cost
model, the wall and CPU time (CPU time of this process, not of the worker
processes), the distinct DES simulations, the iterations and the summary
figures. New ops are simulated on ``--workers`` processes (default: every
CPU), as ``mixpe-sim replay`` does.

Both cost models run by default: ``exact`` (every distinct op simulated; with
the default shape buckets the padded shapes) and ``interpolated`` (anchor
shapes simulated, the rest interpolated). Each run also counts the distinct
ops the exact model would simulate for the same iterations without
simulating them. With ``--prefix N`` the first N requests are replayed with
both cost models and the relative differences of the summary figures are
printed (the interpolation error).

Usage::

    python benchmarks/bench_replay.py                          # both traces, both cost models
    python benchmarks/bench_replay.py --traces code --cost-models interpolated
    python benchmarks/bench_replay.py --shape-buckets 0 --prefix 60 --cost-models interpolated
    python benchmarks/bench_replay.py --traces code --cost-models exact --workers 1
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from mixpe_sys import load_design
from mixpe_sys.cli import cpu_count
from mixpe_sys.hw.precision import run_quant
from mixpe_sys.serving import ServingConfig, ServingSimulator
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.requests import load_request_trace

TRACES = Path(__file__).resolve().parent.parent / "traces" / "azure-llm-2023"
FILES = {"code": TRACES / "AzureLLMInferenceTrace_code.csv", "conv": TRACES / "AzureLLMInferenceTrace_conv.csv"}
COMPARED = ("throughput_tokens_per_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s",
            "e2e_p99_s", "busy_s")


def run(requests, model, design, config, workers=1):
    """Replay with a fresh cost cache on ``workers`` processes; returns (summary, exact op keys needed,
    wall s, CPU s of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    with CostCache(design, workers=workers) as cache:
        sim = ServingSimulator(requests, model, design, config, quant=run_quant(design), cache=cache)
        result = sim.run()
    return (result.summary, len(sim.costs.exact_op_keys()), time.perf_counter() - wall,
            time.process_time() - cpu)


def show(name: str, summary: dict, exact_ops: int, wall: float, cpu: float) -> None:
    print(f"== {name}: wall {wall:.1f} s (CPU {cpu:.1f} s), {summary['simulated_ops']} DES simulations "
          f"(exact costs need {exact_ops}), {summary['iterations']} iterations", flush=True)
    print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}),
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", nargs="+", choices=sorted(FILES), default=["code", "conv"])
    ap.add_argument("--model", default="llama-2-7b")
    ap.add_argument("--design", default="mixpe-w4a8")
    ap.add_argument("--cost-models", nargs="+", choices=["exact", "interpolated"], default=["exact", "interpolated"])
    ap.add_argument("--shape-buckets", type=int, default=ServingConfig().shape_buckets,
                    help="sizes per doubling that shapes are padded to (0: unpadded)")
    ap.add_argument("--limit", type=int, help="replay only the first N requests of each trace")
    ap.add_argument("--rate-scale", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=cpu_count(),
                    help="processes simulating new ops in parallel (default: CPU count)")
    ap.add_argument("--prefix", type=int, default=0,
                    help="also replay the first N requests with both cost models and compare (0: skip)")
    args = ap.parse_args()
    model, design = load_model(args.model), load_design(args.design)
    for name in args.traces:
        requests = load_request_trace(FILES[name], limit=args.limit, rate_scale=args.rate_scale)
        for cost_model in args.cost_models:
            config = ServingConfig(cost_model=cost_model, shape_buckets=args.shape_buckets)
            show(f"{name} trace, {len(requests)} requests, {cost_model} costs, shape buckets {args.shape_buckets}, "
                 f"{args.workers} worker(s)", *run(requests, model, design, config, args.workers))
        if args.prefix:
            head = load_request_trace(FILES[name], limit=args.prefix, rate_scale=args.rate_scale)
            exact, _, wall_e, _ = run(head, model, design,
                                      ServingConfig(cost_model="exact", shape_buckets=args.shape_buckets))
            approx, _, wall_i, _ = run(head, model, design,
                                       ServingConfig(cost_model="interpolated", shape_buckets=args.shape_buckets))
            diffs = ", ".join(f"{k} {100 * (approx[k] - exact[k]) / exact[k]:+.2f}%" for k in COMPARED)
            print(f"-- first {args.prefix} requests: exact {wall_e:.1f} s ({exact['simulated_ops']} DES "
                  f"simulations), interpolated {wall_i:.1f} s ({approx['simulated_ops']}); "
                  f"interpolated - exact: {diffs}", flush=True)


if __name__ == "__main__":
    main()
