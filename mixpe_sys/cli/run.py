"""``mixpe-sim models | trace | run``: model workloads from the command line."""

from __future__ import annotations

import json
import sys

from .common import add_design_args, add_no_cache_arg, cpu_count, positive_int, print_table, print_units, resolve_design
from .system_args import add_system_args, wants_system


def _model(args):
    from ..workload.models import load_model

    return load_model(args.model)


def cmd_models(args) -> int:
    from ..workload.models import list_models

    df = list_models()
    print(df.to_json(orient="records") if args.json else df.to_string(index=False))
    return 0


def cmd_trace(args) -> int:
    from ..sim.model import WorkloadKind, model_ops
    from ..workload.trace import write_trace

    model = _model(args)
    design = resolve_design(args.design, args.config)
    phase = args.phase
    prompt, generate = args.prompt, args.generate
    wl = WorkloadKind(args.workload)
    ops = model_ops(model, design, batch=args.batch, prompt=prompt, generate=generate, workload=wl)
    if wl is WorkloadKind.FULL and phase != "both":
        ops = (op for op in ops if op.phase.value == phase)
    if wl is WorkloadKind.PAPER:  # one token per sequence, no prompt: record what simulate_model reports
        prompt, generate = 0, 1
    n = write_trace(ops, args.output, model=model.name, design=design.name, batch=args.batch, prompt=prompt,
                    generate=generate, workload=wl.value, quant=design.quant.name)
    print(f"wrote {n} ops to {args.output}", file=sys.stderr)
    return 0


def _print_result(result, as_json: bool) -> None:
    figures = result.to_dict()
    if as_json:
        print(json.dumps(figures))
        return
    print(f"{figures['model']} on {figures['design']} ({figures['workload']} workload, batch {figures['batch']}, "
          f"prompt {figures['prompt_tokens']}, generate {figures['generate_tokens']})")

    def share(x):
        return "-" if x is None else f"{x:.1%}"

    tpot = figures["time_per_output_token_s"]
    print_table([
        ("prefill", f"{figures['prefill_time_s'] * 1e3:.3f} ms ({share(figures['memory_bound_share_prefill'])} "
                    f"memory-bound)"),
        ("decode", f"{figures['decode_time_s'] * 1e3:.3f} ms ({share(figures['memory_bound_share_decode'])} "
                   f"memory-bound)"),
        ("total", f"{figures['total_time_s'] * 1e3:.3f} ms"),
        ("time per output token", "-" if tpot is None else f"{tpot * 1e3:.3f} ms"),
        ("tokens/s", f"{figures['tokens_per_s']:.2f}"),
        ("DRAM read / write", f"{figures['dram_read_bytes'] / 1e9:.3f} / {figures['dram_write_bytes'] / 1e9:.3f} GB"),
        ("ops (simulated / total)", f"{figures['simulated_ops']} / {figures['ops']}"),
    ])
    top = (result.ops.groupby(["phase", "name"], sort=False)["time_s"].sum().sort_values(ascending=False).head(6))
    print("  top ops by time:")
    for (phase, name), t in top.items():
        print(f"    {phase:<8} {name:<14} {t * 1e3:10.3f} ms")
    print_units(result.utilization)


def cmd_run(args) -> int:
    from ..report import write_reports
    from ..sim.model import WorkloadKind, simulate_model, simulate_ops_result
    from ..workload.trace import read_trace

    design = resolve_design(args.design, args.config)
    if wants_system(args):
        from .system_run import run_system

        return run_system(args, design)
    cache_dir = False if args.no_cache else None
    if args.trace:
        meta, ops = read_trace(args.trace)
        result = simulate_ops_result(ops, design, model_name=str(meta.get("model", args.trace)),
                                     workload=str(meta.get("workload", "trace")), batch=int(meta.get("batch", 1)),
                                     prompt=int(meta.get("prompt", 0)), generate=int(meta.get("generate", 1)),
                                     reuse=not args.no_reuse, progress=None, total=len(ops),
                                     workers=args.workers or cpu_count(), cache_dir=cache_dir)
    else:
        result = simulate_model(_model(args), design, batch=args.batch, prompt=args.prompt,
                                generate=args.generate, workload=WorkloadKind(args.workload),
                                reuse=not args.no_reuse, workers=args.workers or cpu_count(), cache_dir=cache_dir)
    if args.out:
        write_reports(args.out, result.ops, result.layers, result.phases, result.to_dict(), result.utilization)
    _print_result(result, args.json)
    return 0


def register(sub) -> None:
    """Add the model subcommands to the ``mixpe-sim`` parser."""
    p = sub.add_parser("models", help="list the shipped model configs")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("trace", help="write an operator trace of a model run (JSONL or CSV)")
    p.add_argument("--model", required=True, help="model name (see `models`) or a config.json path")
    p.add_argument("--phase", choices=["prefill", "decode", "both"], default="both", help="which phase(s) to write")
    p.add_argument("--batch", type=positive_int, default=1, help="sequences, default 1")
    p.add_argument("--prompt", type=positive_int, default=512, help="prompt tokens, default 512")
    p.add_argument("--generate", type=positive_int, default=128, help="generated tokens, default 128")
    p.add_argument("--workload", choices=["full", "paper"], default="full", help="full decoder or the paper's")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output .jsonl or .csv")
    add_design_args(p)
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("run", help="simulate a model (or an operator trace) on a design")
    p.add_argument("--model", default="llama-2-7b", help="model name (see `models`) or a config.json path "
                   "(default llama-2-7b)")
    p.add_argument("--trace", metavar="FILE", help="replay an operator trace instead of --model")
    p.add_argument("--batch", type=positive_int, default=1, help="sequences, default 1 (the paper used 64)")
    p.add_argument("--prompt", type=positive_int, default=512,
                   help="prompt tokens per sequence (full workload), default 512")
    p.add_argument("--generate", type=positive_int, default=128,
                   help="generated tokens per sequence (full workload), default 128")
    p.add_argument("--workload", choices=["full", "paper"], default="full",
                   help="full decoder (default) or the MixPE authors' linear-layer workload")
    p.add_argument("--no-reuse", action="store_true", help="simulate every op (same results, slower)")
    p.add_argument("--workers", type=positive_int,
                   help="processes simulating the distinct ops in parallel (default: CPU count; same results)")
    add_no_cache_arg(p)
    p.add_argument("--out", metavar="DIR", help="write ops.csv, layers.csv, phases.csv, timeline.json")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_design_args(p)
    add_system_args(p)
    p.set_defaults(func=cmd_run)
