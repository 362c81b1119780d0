"""Wall-clock cost of serving replays of the Azure LLM inference traces.

Replays the full Azure 2023 code trace (8,819 requests) and conversation
trace (19,366 requests) on Llama-2-7B with ``mixpe-w4a8`` (continuous
batching, max batch 32, 4,096 batched tokens) and prints, per trace, the wall
time, the distinct DES simulations, the iterations and the summary figures.

The full traces run with the interpolated cost model by default: the exact
model simulates every distinct op, and these traces have tens of thousands
(every iteration's token count and every sequence's KV length differ); the
benchmark counts them along the same schedule without simulating them. To
measure the interpolation error it also replays the first ``--prefix``
requests of each trace both ways and prints the relative differences.

Usage::

    python benchmarks/bench_replay.py                        # both traces, interpolated, prefix 60
    python benchmarks/bench_replay.py --traces code --prefix 0
    python benchmarks/bench_replay.py --cost-model exact --limit 200
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from mixpe_sys import load_design
from mixpe_sys.serving import ServingConfig, ServingSimulator
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.requests import load_request_trace

TRACES = Path(__file__).resolve().parent.parent / "traces" / "azure-llm-2023"
FILES = {"code": TRACES / "AzureLLMInferenceTrace_code.csv", "conv": TRACES / "AzureLLMInferenceTrace_conv.csv"}
COMPARED = ("throughput_tokens_per_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s",
            "e2e_p99_s", "busy_s")


def run(requests, model, design, config):
    """Replay; returns (summary, exact op keys needed, wall s, CPU s of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    sim = ServingSimulator(requests, model, design, config, cache=CostCache(design))
    result = sim.run()
    return (result.summary, len(sim.costs.exact_op_keys()), time.perf_counter() - wall,
            time.process_time() - cpu)


def show(name: str, summary: dict, exact_ops: int, wall: float, cpu: float) -> None:
    print(f"== {name}: wall {wall:.1f} s (CPU {cpu:.1f} s), {summary['simulated_ops']} DES simulations "
          f"(exact costs would need {exact_ops}), {summary['iterations']} iterations")
    print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", nargs="+", choices=sorted(FILES), default=["code", "conv"])
    ap.add_argument("--model", default="llama-2-7b")
    ap.add_argument("--design", default="mixpe-w4a8")
    ap.add_argument("--cost-model", choices=["interpolated", "exact"], default="interpolated")
    ap.add_argument("--limit", type=int, help="replay only the first N requests of each trace")
    ap.add_argument("--rate-scale", type=float, default=1.0)
    ap.add_argument("--prefix", type=int, default=60,
                    help="also replay the first N requests exactly and interpolated, and compare (0: skip)")
    args = ap.parse_args()
    model, design = load_model(args.model), load_design(args.design)
    config = ServingConfig(cost_model=args.cost_model)
    for name in args.traces:
        requests = load_request_trace(FILES[name], limit=args.limit, rate_scale=args.rate_scale)
        show(f"{name} trace, {len(requests)} requests, {args.cost_model} costs",
             *run(requests, model, design, config))
        if args.prefix:
            head = load_request_trace(FILES[name], limit=args.prefix, rate_scale=args.rate_scale)
            exact, _, wall_e, _ = run(head, model, design, ServingConfig(cost_model="exact"))
            approx, _, wall_i, _ = run(head, model, design, ServingConfig(cost_model="interpolated"))
            diffs = ", ".join(f"{k} {100 * (approx[k] - exact[k]) / exact[k]:+.2f}%" for k in COMPARED)
            print(f"-- first {args.prefix} requests: exact {wall_e:.1f} s ({exact['simulated_ops']} DES "
                  f"simulations), interpolated {wall_i:.1f} s ({approx['simulated_ops']}); "
                  f"interpolated - exact: {diffs}")


if __name__ == "__main__":
    main()
