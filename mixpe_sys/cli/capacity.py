"""``mixpe-sim capacity``: the largest arrival rate a design or system sustains within latency targets."""

from __future__ import annotations

import json

from .common import cpu_count, positive_float, positive_int, print_table, resolve_design
from .replay import add_serving_args, seconds_text, replay_on_system, serving_config
from .system_args import wants_system


def cmd_capacity(args) -> int:
    from ..serving import replay
    from ..serving.capacity import find_capacity
    from ..serving.capacity_plot import write_capacity
    from ..sim.engine import CostCache
    from ..workload.models import load_model
    from ..workload.requests import load_request_trace

    design = resolve_design(args.design, args.config)
    model = load_model(args.model)
    requests = load_request_trace(args.trace, limit=args.limit)
    config = serving_config(args)
    on_system = wants_system(args)
    if on_system:
        from .system_args import resolve_system

        chip = resolve_system(args, design).chip
    else:
        chip = design
    # one op cost cache for every probe: each probe only simulates the ops the earlier ones did not
    with CostCache(chip, workers=args.workers or cpu_count(),
                   cache_dir=False if args.no_cache else None, fast_forward=not args.no_fast_forward) as cache:
        def probe(trace):
            if on_system:
                return replay_on_system(args, trace, model, design, cache=cache).summary
            return replay(trace, model, design, config=config, cache=cache, progress=False).summary

        result = find_capacity(requests, probe, slo_ttft_p99_s=args.slo_ttft_p99, slo_tpot_p99_s=args.slo_tpot_p99,
                               start=args.start, tolerance=args.tolerance, max_probes=args.max_probes)
    where = args.system or (f"{design.name}" + (f" (tp {args.tp or 1} x pp {args.pp or 1})" if on_system else ""))
    if args.out:
        write_capacity(result, args.out, title=f"Latency vs load: {model.name} on {where}")
    d = result.to_dict()
    if args.json:
        print(json.dumps(d))
        return 0
    print(f"{model.name} on {where}: SLOs TTFT p99 <= {seconds_text(args.slo_ttft_p99)}, "
          f"TPOT p99 <= {seconds_text(args.slo_tpot_p99)}")
    if result.max_rate_scale == 0:
        print(f"  no rate tried meets both SLOs (smallest scale tried {result.curve['rate_scale'].min():.3g}x)")
        return 0
    print_table([
        ("max rate scale", f"{d['max_rate_scale']:.4g}x the trace's rate"),
        ("max rate", f"{d['max_requests_per_s']:.4g} requests/s" if d["max_requests_per_s"] else "-"),
        ("TTFT p50 / p99 there", f"{seconds_text(d['ttft_p50_s'])} / {seconds_text(d['ttft_p99_s'])}"),
        ("TPOT p50 / p99 there", f"{seconds_text(d['tpot_p50_s'])} / {seconds_text(d['tpot_p99_s'])}"),
        ("throughput there", f"{d['throughput_tokens_per_s']:.2f} output tokens/s"),
        ("probes", d["probes"]),
    ])
    return 0


def register(sub) -> None:
    """Add ``capacity`` to the ``mixpe-sim`` parser."""
    p = sub.add_parser("capacity", help="find the largest arrival rate that meets TTFT and TPOT targets",
                       description="Replay TRACE at scaled arrival rates and bisect for the largest rate scale "
                                   "whose p99 time to first token and p99 time per output token both meet "
                                   "their targets. Takes every option of `replay` (design, system, replicas, "
                                   "serving). With --out, writes capacity.csv (every probe), capacity.png "
                                   "(latency vs offered load) and capacity.json.")
    add_serving_args(p)
    p.add_argument("--slo-ttft-p99", type=positive_float, required=True, metavar="S",
                   help="target p99 time to first token (s)")
    p.add_argument("--slo-tpot-p99", type=positive_float, required=True, metavar="S",
                   help="target p99 time per output token (s)")
    p.add_argument("--start", type=positive_float, default=1.0, help="first rate scale tried, default 1")
    p.add_argument("--tolerance", type=positive_float, default=0.05,
                   help="stop when the bracket's upper / lower scale is at most 1 + this, default 0.05")
    p.add_argument("--max-probes", type=positive_int, default=30, help="most replays, default 30")
    p.add_argument("--json", action="store_true", help="print one JSON object (field max_rate_scale)")
    p.add_argument("--out", metavar="DIR", help="write capacity.csv, capacity.png and capacity.json")
    p.set_defaults(func=cmd_capacity)
