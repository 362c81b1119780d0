"""``mixpe-sim designs`` and ``mixpe-sim gemm``."""

from __future__ import annotations

import json

from .common import (add_design_args, add_launch_arg, add_no_fast_forward_arg, check_output_file, nonneg_int,
                     positive_int, print_table, print_units, resolve_design, write_atomic)


def cmd_designs(args) -> int:
    from ..designs import list_designs

    df = list_designs()
    if args.json:
        print(df.to_json(orient="records"))
    else:
        print(df.drop(columns=["description"]).to_string(index=False))
    return 0


def quant_label(spec) -> str:
    """``W4A8, group 128`` and what a partial or per-channel group means (stated, not silent)."""
    label = f"W{spec.weight_bits}A{spec.activation_bits}"
    if spec.group_size:
        label += f", group {spec.group_size}"
        if spec.group_size > spec.k:
            label += f": one partial group of {spec.k} weights per column (K < group size)"
        elif spec.k % spec.group_size:
            label += (f": {-(-spec.k // spec.group_size)} groups per column, the last of {spec.k % spec.group_size} "
                      f"weights")
    elif spec.weight_bits < 8 and spec.scale_bits:
        label += ", per-channel scales (applied with the output; not simulated)"
    return label


def cmd_gemm(args) -> int:
    from .. import simulate_gemm
    from ..area import area_mm2

    check_output_file(args.steps_csv, "--steps-csv", (".csv",))
    design = resolve_design(args.design, args.config, args)
    result = simulate_gemm(args.m, args.n, args.k, design, batch=args.batch, quant=args.quant,
                           group_size=args.group_size, launch=args.launch,
                           fast_forward=not args.no_fast_forward)
    spec = result.spec
    figures = result.to_dict()
    if args.steps_csv:
        write_atomic(args.steps_csv, lambda p: result.steps.to_csv(p, index=False))
    if args.json:
        print(json.dumps({**figures, "area_mm2": area_mm2(design)}))
        return 0
    t = figures["tiling"]
    e = result.energy
    batch = f"{args.batch} x " if args.batch > 1 else ""
    print(f"GEMM {batch}{args.m}x{args.k} @ {args.k}x{args.n} ({quant_label(spec)}) on {design.name}")
    print_table([
        ("time", f"{result.time_s * 1e6:.3f} us ({result.core_cycles} cycles)"
                 + (f"; device {result.device_time_s * 1e6:.3f} us + {result.launch} launch"
                    if result.device_time_s != result.time_s
                    else "")),
        ("roofline", f"{result.roofline_time_s * 1e6:.3f} us ({result.roofline_bound}-bound; "
                     f"memory {result.memory_time_s * 1e6:.3f} us, compute {result.compute_time_s * 1e6:.3f} us)"),
        ("of roofline", f"{result.roofline_time_s / result.time_s:.1%}"),
        ("MACs", result.macs),
        ("compute / stall cycles", f"{result.compute_cycles} / {result.stall_cycles}"),
        ("PE utilization", f"{result.utilization:.1%}"),
        ("bottleneck", f"{result.bottleneck} ({result.bottleneck_utilization:.1%} busy)"),
        ("DRAM read / write", f"{result.dram_read_bytes} / {result.dram_write_bytes} B"),
        ("SRAM read / write", f"{result.sram_read_bytes} / {result.sram_write_bytes} B"),
        ("energy", f"{result.energy_j * 1e6:.4g} uJ ({result.energy_j / result.macs * 1e12:.4g} pJ/MAC; "
                   f"static {e.static_j * 1e6:.3g}, DRAM {e.dram_j * 1e6:.3g}, buffers {e.buffer_j * 1e6:.3g}, "
                   f"core {e.core_j * 1e6:.3g} uJ)"),
        ("area", f"{area_mm2(design):.3f} mm^2 ({design.num_tiles} tiles, 28 nm)"),
        ("tiling", f"tm={t['tm']} tn={t['tn']} tk={t['tk']} {t['order']} {t['dataflow']}, "
                   f"{t['tile_steps']} tile steps on {t['tiles']} of {design.num_tiles} tiles"
                   + (f", K split {t['split_k']} ways (partial sums added in a second phase)"
                      if t["split_k"] > 1 else "")),
    ])
    print_units(result.units)
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
    add_no_fast_forward_arg(p)
    p.add_argument("--steps-csv", metavar="FILE", help="write the per-tile-step records as CSV")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_design_args(p)
    p.set_defaults(func=cmd_gemm)
