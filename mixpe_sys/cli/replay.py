"""``mixpe-sim replay``: serve a request trace with static or continuous batching."""

from __future__ import annotations

import math

from .common import (add_attention_arg, add_design_args, add_launch_arg, add_no_cache_arg, add_no_fast_forward_arg, check_output_dir, cpu_count,
                     nonneg_int, positive_float, positive_int,
                     print_table, resolve_design)
from .system_args import add_scale_args, add_system_args, kv_link, pools, resolve_system, wants_system

SUSTAINABLE_RATE_HELP = (
    "The trace is served at its own arrival rate (times --rate-scale), whatever the system can sustain: when "
    "the summary says it was offered more than it served, the queue grew through the trace and the latencies "
    "grow with the trace's length, not with the system. To find a sustainable rate, run `mixpe-sim capacity "
    "TRACE --slo-ttft-p99 S --slo-tpot-p99 S` with the same options (it bisects --rate-scale for the largest "
    "rate meeting both latency targets), or lower --rate-scale until the offered and served rates match; "
    "--replicas, --tp and --disaggregate add chips.")


def seconds_text(x: float | None) -> str:
    """A duration in s as ``12.345 ms`` below a second, ``1.234 s`` above, ``-`` when unknown."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 1e3:.3f} ms" if x < 1 else f"{x:.3f} s"


def _print_summary(s: dict) -> None:
    print(f"{s['model']} on {s['design']} ({s['quant']}), {s['batching']} batching, max batch {s['max_batch']}, "
          f"{s['max_batched_tokens']} tokens/iteration{', chunked prefill' if s['chunked_prefill'] else ''}, "
          f"{s['cost_model']} costs, {s.get('launch', 'graph')} launch, {s.get('attention', 'fused')} attention")
    energy = s["energy_per_token_j"]
    print_table([
        ("requests (completed)", f"{s['requests']} ({s['completed']})"
                                 + (f"; {s['rejected_requests']} more rejected: beyond the {s['context_tokens']}-token "
                                    f"context of {s['model']}" if s.get("rejected_requests") else "")),
        ("tokens (prompt / output)", f"{s['prompt_tokens']} / {s['output_tokens']}"),
        ("span (busy)", f"{seconds_text(s['duration_s'])} ({seconds_text(s['busy_s'])})"),
        ("throughput", f"{s['throughput_tokens_per_s']:.2f} output tokens/s"),
        ("TTFT p50 / p99", f"{seconds_text(s['ttft_p50_s'])} / {seconds_text(s['ttft_p99_s'])}"),
        ("TPOT p50 / p99", f"{seconds_text(s['tpot_p50_s'])} / {seconds_text(s['tpot_p99_s'])}"),
        ("e2e p50 / p99", f"{seconds_text(s['e2e_p50_s'])} / {seconds_text(s['e2e_p99_s'])}"),
        ("energy per token", "-" if math.isnan(energy) else f"{energy * 1e3:.4f} mJ"),
        ("area", f"{s['area_mm2']:.3f} mm^2 (28 nm)"),
        ("preemptions (requests)", f"{s['preemptions']} ({s['preempted_requests']})"),
        ("KV cache (peak / capacity)", f"{s['kv_peak_tokens']} / {s['kv_capacity_tokens']} tokens"
                                       + (" per replica" if s.get("replicas", 1) > 1 else "")),
        ("iterations (mean batch)", f"{s['iterations']} ({s['mean_batch_sequences']:.2f} sequences)"),
        ("ops simulated", s["simulated_ops"]),
        ("wall time", f"{s['wall_s']:.2f} s"),
    ])
    print(f"  load: {s['load_statement']}")
    if s.get("offered_to_served", 0) > 1:
        print("  (see `mixpe-sim replay --help` for how to find a sustainable rate)")


def cmd_replay(args) -> int:
    from ..serving import replay
    from ..workload.models import load_model
    from ..workload.requests import load_request_trace

    from ..area import area_mm2

    config = serving_config(args)
    check_output_dir(args.out, "--out")
    design = resolve_design(args.design, args.config, args)
    model = load_model(args.model)
    requests = load_request_trace(args.trace, limit=args.limit, rate_scale=args.rate_scale)
    if wants_system(args):
        result = replay_on_system(args, requests, model, design)
    else:
        result = replay(requests, model, design, config=config, progress=None, workers=args.workers or cpu_count(),
                        cache_dir=False if args.no_cache else None, fast_forward=not args.no_fast_forward)
    result.summary["area_mm2"] = area_mm2(design)
    if args.out:
        result.write(args.out)
    if args.json:
        print(result.to_json())
    else:
        _print_summary(result.summary)
        if wants_system(args):
            _print_replicas(result)
    return 0


def serving_config(args):
    """The ServingConfig of the serving options."""
    from ..serving import ServingConfig

    return ServingConfig(batching=args.batching, max_batch=args.max_batch,
                         max_batched_tokens=args.max_batched_tokens, chunked_prefill=args.chunked_prefill,
                         cost_model=args.cost_model, shape_buckets=args.shape_buckets, launch=args.launch,
                         attention=args.attention)


def replay_on_system(args, requests, model, design, *, cache=None):
    """Replay on the system and replicas of the options (a ClusterResult)."""
    from ..system.serve import replay_system

    replicas, disagg = pools(args)
    system = resolve_system(args, design, replicas)
    return replay_system(requests, model, system, config=serving_config(args), replicas=replicas,
                         router=args.router, disaggregate=disagg, kv_link=kv_link(args), cache=cache,
                         workers=args.workers or cpu_count(), progress=None if cache is None else False,
                         cache_dir=False if getattr(args, "no_cache", False) else None,
                         fast_forward=not getattr(args, "no_fast_forward", False))


def _print_replicas(result) -> None:
    s = result.summary
    print(f"  system: {s['system']}, {s['replicas']} replica(s) of tp {s['tp']} x pp {s['pp']}, "
          f"router {s['router']}" + (f"; KV cache moved over {s['kv_link']}, mean "
                                     f"{seconds_text(s['kv_transfer_mean_s'])} per request" if "kv_link" in s else ""))
    if s.get("replica_links_shared"):
        print("  note: replicas' collectives can share links; that contention is not simulated")
    cols = ["pool", "replica", "requests", "completed", "iterations", "utilization", "output_tokens", "peak_waiting"]
    print("    " + result.replicas[cols].to_string(index=False).replace("\n", "\n    "))


def add_serving_args(p) -> None:
    """The serving options shared by ``replay`` and ``capacity``."""
    p.add_argument("trace", metavar="TRACE", help="request trace file")
    p.add_argument("--model", default="llama-2-7b", help="model name (see `models`) or a config.json path "
                                                         "(default llama-2-7b)")
    p.add_argument("--batching", choices=["continuous", "static"], default="continuous",
                   help="continuous (iteration-level, default) or static batching")
    p.add_argument("--max-batch", type=positive_int, default=32,
                   help="most sequences per batch (static) or running at once (continuous), default 32")
    p.add_argument("--max-batched-tokens", type=positive_int, default=4096,
                   help="most new tokens per iteration, default 4096")
    p.add_argument("--chunked-prefill", action="store_true",
                   help="split prompts across iterations to fill the token budget (continuous only)")
    p.add_argument("--cost-model", choices=["exact", "interpolated"], default="exact",
                   help="exact: simulate every distinct op (default); interpolated: simulate anchor sizes and "
                        "interpolate between them (fewer simulations; `python benchmarks/bench_replay.py "
                        "--prefix N` prints both and their differences on this machine)")
    p.add_argument("--shape-buckets", type=nonneg_int, default=16,
                   help="pad token counts and KV lengths to N sizes per doubling (exactly simulated padded "
                        "shapes, under 1/N extra work); 0 = unpadded, default 16")
    add_launch_arg(p)
    add_attention_arg(p)
    p.add_argument("--limit", type=positive_int, help="replay only the first N requests of the file")
    p.add_argument("--workers", type=positive_int,
                   help="processes simulating new ops in parallel (default: CPU count; results do not depend "
                        "on it)")
    add_no_cache_arg(p)
    add_no_fast_forward_arg(p)
    add_design_args(p)
    add_system_args(p)
    add_scale_args(p)


def register(sub) -> None:
    """Add ``replay`` to the ``mixpe-sim`` parser."""
    p = sub.add_parser("replay", help="serve a request trace (Azure CSV, CSV or JSONL) with static or "
                                      "continuous batching, on one chip or on replicas of a system",
                       description="Serve a request trace and report latency, throughput and energy. Requests "
                                   "beyond the model's context are rejected and counted, as vLLM does; a progress "
                                   "bar shows completed requests on a terminal. " + SUSTAINABLE_RATE_HELP)
    add_serving_args(p)
    p.add_argument("--rate-scale", type=positive_float, default=1.0,
                   help="arrival-rate multiplier (2 = twice as fast), default 1")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write requests.csv, iterations.csv and summary.json "
                                                "(and replicas.csv on a system)")
    p.set_defaults(func=cmd_replay)
