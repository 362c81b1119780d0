"""``mixpe-sim designs`` and ``mixpe-sim gemm``."""

from __future__ import annotations

import json

from .common import add_design_args, add_launch_arg, nonneg_int, positive_int, print_table, resolve_design


def cmd_designs(args) -> int:
    from ..designs import list_designs

    df = list_designs()
    if args.json:
        print(df.to_json(orient="records"))
    else:
        print(df.drop(columns=["description"]).to_string(index=False))
    return 0


def cmd_gemm(args) -> int:
    from .. import simulate_gemm

    design = resolve_design(args.design, args.config)
    result = simulate_gemm(args.m, args.n, args.k, design, batch=args.batch, quant=args.quant,
                           group_size=args.group_size, launch=args.launch)
    spec = result.spec
    figures = result.to_dict()
    if args.steps_csv:
        result.steps.to_csv(args.steps_csv, index=False)
    if args.json:
        print(json.dumps(figures))
        return 0
    t = figures["tiling"]
    print(f"GEMM {args.m}x{args.k} @ {args.k}x{args.n} (W{spec.weight_bits}A{spec.activation_bits}, "
          f"group {spec.group_size}) on {design.name}")
    print_table([
        ("time", f"{result.time_s * 1e6:.3f} us ({result.core_cycles} cycles)"
                 + (f"; device {result.device_time_s * 1e6:.3f} us + {result.launch} launch"
                    if result.device_time_s != result.time_s
                    else "")),
        ("roofline", f"{result.roofline_time_s * 1e6:.3f} us ({result.bound}-bound; "
                     f"memory {result.memory_time_s * 1e6:.3f} us, compute {result.compute_time_s * 1e6:.3f} us)"),
        ("of roofline", f"{result.roofline_time_s / result.time_s:.1%}"),
        ("MACs", result.macs),
        ("compute / stall cycles", f"{result.compute_cycles} / {result.stall_cycles}"),
        ("PE utilization", f"{result.utilization:.1%}"),
        ("DRAM read / write", f"{result.dram_read_bytes} / {result.dram_write_bytes} B"),
        ("SRAM read / write", f"{result.sram_read_bytes} / {result.sram_write_bytes} B"),
        ("tiling", f"tm={t['tm']} tn={t['tn']} tk={t['tk']} {t['order']} {t['dataflow']}, "
                   f"{t['tile_steps']} tile steps"),
    ])
    return 0


def register(sub) -> None:
    """Add the ``designs`` and ``gemm`` subcommands."""
    p = sub.add_parser("designs", help="list the shipped design presets")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_designs)

    p = sub.add_parser("gemm", help="simulate one GEMM [M x K] x [K x N]")
    p.add_argument("--m", type=positive_int, default=1, help="activation rows (tokens), default 1")
    p.add_argument("--n", type=positive_int, default=4096, help="output columns, default 4096")
    p.add_argument("--k", type=positive_int, default=4096, help="reduction length, default 4096")
    p.add_argument("--batch", type=positive_int, default=1, help="independent GEMM instances, default 1")
    p.add_argument("--quant", help="operand precisions, e.g. W4A8, W4A16, W8A8 (default: the design's)")
    p.add_argument("--group-size", type=nonneg_int, help="weights per quantization group (default: the design's)")
    add_launch_arg(p)
    p.add_argument("--steps-csv", metavar="FILE", help="write the per-tile-step records as CSV")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_design_args(p)
    p.set_defaults(func=cmd_gemm)
