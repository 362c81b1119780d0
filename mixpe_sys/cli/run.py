"""``mixpe-sim models | trace | run``: model workloads from the command line."""

from __future__ import annotations

import json
import sys

from .common import (add_attention_arg, add_design_args, add_launch_arg, add_no_cache_arg, add_no_fast_forward_arg, check_output_dir,
                     check_output_file, cpu_count, nonneg_int,
                     parse_quant, positive_int, print_table, print_units, resolve_design)
from .system_args import add_system_args, wants_system


def _model(args):
    from ..workload.models import load_model

    return load_model(args.model)


def cmd_models(args) -> int:
    from ..workload.models import list_models

    df = list_models()
    print(df.to_json(orient="records") if args.json else df.to_string(index=False))
    return 0


TRACE_SUFFIXES = (".jsonl", ".csv")


def cmd_trace(args) -> int:
    from ..checks import check_model_run
    from ..hw.precision import run_quant
    from ..sim.model import WorkloadKind, model_ops
    from ..workload.trace import write_trace

    check_output_file(args.output, "-o/--output", TRACE_SUFFIXES)
    model = _model(args)
    design = resolve_design(args.design, args.config, args)
    phase = args.phase
    prompt, generate = args.prompt, args.generate
    wl = WorkloadKind(args.workload)
    quant = run_quant(design)
    check_model_run(model, design, batch=args.batch, prompt=prompt, generate=generate, workload=wl.value,
                    quant=quant, attention=args.attention)
    ops = model_ops(model, design, batch=args.batch, prompt=prompt, generate=generate, workload=wl, quant=quant,
                    attention=args.attention)
    if wl is WorkloadKind.FULL and phase != "both":
        ops = (op for op in ops if op.phase.value == phase)
    if wl is WorkloadKind.PAPER:  # one token per sequence, no prompt: record what simulate_model reports
        prompt, generate = 0, 1
    n = write_trace(ops, args.output, model=model.name, design=design.name, batch=args.batch, prompt=prompt,
                    generate=generate, workload=wl.value, quant=quant.name)
    print(f"wrote {n} ops to {args.output}", file=sys.stderr)
    return 0


def _figures(result) -> dict:
    """The run's headline figures and the design's area (mm^2)."""
    from ..area import area_mm2

    return {**result.to_dict(), "area_mm2": area_mm2(result.config) if result.config is not None else None}


def _print_result(result, as_json: bool) -> None:
    figures = _figures(result)
    area = figures["area_mm2"]
    if as_json:
        print(json.dumps(figures))
        return
    print(f"{figures['model']} on {figures['design']} ({figures['workload']} workload, {figures['quant']}, "
          f"batch {figures['batch']}, prompt {figures['prompt_tokens']}, generate {figures['generate_tokens']}, "
          f"{figures['launch']} launch)")

    def share(x):
        return "-" if x is None else f"{x:.1%}"

    tpot = figures["time_per_output_token_s"]
    energy, per_token = figures["energy_j"], figures["energy_per_output_token_j"]
    parts = figures["energy_breakdown_j"]
    print_table([
        ("prefill", f"{figures['prefill_time_s'] * 1e3:.3f} ms ({share(figures['memory_bound_share_prefill'])} "
                    f"memory-bound)"),
        ("decode", f"{figures['decode_time_s'] * 1e3:.3f} ms ({share(figures['memory_bound_share_decode'])} "
                   f"memory-bound)"),
        ("total", f"{figures['total_time_s'] * 1e3:.3f} ms"),
        ("time per output token", "-" if tpot is None else f"{tpot * 1e3:.3f} ms"),
        ("tokens/s", "-" if figures["tokens_per_s"] is None else f"{figures['tokens_per_s']:.2f}"),
        ("energy", f"{energy * 1e3:.4g} mJ (static {parts['static'] * 1e3:.3g}, DRAM {parts['dram'] * 1e3:.3g}, "
                   f"buffers {parts['buffer'] * 1e3:.3g}, core {parts['core'] * 1e3:.3g} mJ)"),
        ("energy per output token", "-" if per_token is None else f"{per_token * 1e3:.4g} mJ "
                                    f"({figures['output_tokens']} tokens)"),
        ("area", "-" if area is None else f"{area:.3f} mm^2 (28 nm)"),
        ("DRAM read / write", f"{figures['dram_read_bytes'] / 1e9:.3f} / {figures['dram_write_bytes'] / 1e9:.3f} GB"),
        ("ops (simulated / total)", f"{figures['simulated_ops']} / {figures['ops']}"),
    ])
    top = (result.ops.groupby(["phase", "name"], sort=False)["time_s"].sum().sort_values(ascending=False).head(6))
    print("  top ops by time:")
    for (phase, name), t in top.items():
        print(f"    {phase:<8} {name:<14} {t * 1e3:10.3f} ms")
    print_units(result.utilization)


def cmd_run(args) -> int:
    from ..checks import check_model_run, check_ops
    from ..errors import ConfigError
    from ..hw.precision import run_quant
    from ..report import write_reports
    from ..sim.model import WorkloadKind, simulate_model, simulate_ops_result
    from ..workload.trace import read_trace_lines

    check_output_dir(args.out, "--out")
    design = resolve_design(args.design, args.config, args)
    if args.trace and args.quant:
        raise ConfigError("--quant: a trace carries its own precisions; give --quant with --model")
    if args.workload == "paper" and args.quant:
        raise ConfigError("--quant: the paper workload takes its precisions from the design's paper profile")
    asked = parse_quant(args.quant, args.group_size)
    if wants_system(args):
        from .system_run import run_system

        if args.attention != "fused":
            raise ConfigError("--attention: system runs (--system, --tp, --pp, ...) use fused attention only")
        return run_system(args, design, asked)
    quant = run_quant(design, asked)
    cache_dir = False if args.no_cache else None
    progress = False if args.json else None  # a bar over the distinct ops simulated: on a terminal, after 1 s
    if args.trace:
        meta, ops, lines = read_trace_lines(args.trace)
        check_ops(ops, design, what="trace", lines=lines, source=args.trace)
        result = simulate_ops_result(ops, design, model_name=str(meta.get("model", args.trace)),
                                     workload=str(meta.get("workload", "trace")), batch=int(meta.get("batch", 1)),
                                     prompt=int(meta.get("prompt", 0)), generate=int(meta.get("generate", 1)),
                                     reuse=not args.no_reuse, progress=progress,
                                     workers=args.workers or cpu_count(), launch=args.launch,
                                     quant=str(meta.get("quant", "")), cache_dir=cache_dir,
                                     fast_forward=not args.no_fast_forward)
    else:
        model = _model(args)
        check_model_run(model, design, batch=args.batch, prompt=args.prompt, generate=args.generate,
                        workload=args.workload, quant=quant, attention=args.attention)
        result = simulate_model(model, design, batch=args.batch, prompt=args.prompt,
                                generate=args.generate, workload=WorkloadKind(args.workload),
                                reuse=not args.no_reuse, workers=args.workers or cpu_count(), quant=quant,
                                launch=args.launch, cache_dir=cache_dir, attention=args.attention,
                                fast_forward=not args.no_fast_forward, progress=progress)
    if args.out:
        write_reports(args.out, result.ops, result.layers, result.phases, _figures(result), result.utilization)
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
    add_attention_arg(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="output file: .jsonl (JSON lines) or .csv, by its extension")
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
    p.add_argument("--quant", help="operand precisions of the model, e.g. W4A16, W4A8, W8A8, W16A16 (default: the "
                   "design's); one the design's PEs cannot run is an error")
    p.add_argument("--group-size", type=nonneg_int, help="weights per quantization group with --quant "
                   "(default 128 for 4-bit weights; 0 = per-channel scales)")
    add_launch_arg(p)
    add_attention_arg(p)
    p.add_argument("--no-reuse", action="store_true", help="simulate every op (same results, slower)")
    p.add_argument("--workers", type=positive_int,
                   help="processes simulating the distinct ops in parallel (default: CPU count; same results)")
    add_no_cache_arg(p)
    add_no_fast_forward_arg(p)
    p.add_argument("--out", metavar="DIR", help="write ops.csv, layers.csv, phases.csv, timeline.json")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_design_args(p)
    add_system_args(p)
    p.set_defaults(func=cmd_run)
