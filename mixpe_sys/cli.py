"""Command line: ``mixpe-sim designs | gemm | models | trace | run | replay``.

Every user error (bad argument, config, trace row) prints one line on stderr
and exits with code 2; nothing is printed as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import MixpeError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int, words: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}")
        return value
    return parse


positive_int = _int_at_least(1, "a positive integer")
"""argparse type: an integer > 0."""
nonneg_int = _int_at_least(0, "an integer >= 0")
"""argparse type: an integer >= 0."""


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def resolve_design(name: str, config_file: str | None = None):
    """The design ``name`` (preset or file), with ``config_file`` merged over it when given."""
    from .config_base import read_config_data
    from .designs import design_from_data, load_design

    if config_file is None:
        return load_design(name)
    data, lines = read_config_data(config_file)
    if isinstance(data, dict) and "extends" not in data and "name" not in data:
        data = {"extends": name, "name": f"{name}+{Path(config_file).stem}", **data}
    elif isinstance(data, dict) and "extends" not in data:
        data = {"extends": name, **data}
    return design_from_data(data, source=config_file, lines=lines)


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def print_table(rows: Sequence[tuple[str, Any]], out=None) -> None:
    """Print label/value pairs as an aligned two-column table."""
    out = out or sys.stdout
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        if isinstance(value, float):
            value = f"{value:.6g}"
        print(f"  {key:<{width}}  {value}", file=out)


def add_design_args(p: argparse.ArgumentParser, default: str = "mixpe-w4a8") -> None:
    """--design and --config options shared by subcommands."""
    p.add_argument("--design", default=default, help=f"design preset name or YAML file (default {default})")
    p.add_argument("--config", metavar="FILE.yaml", help="design fields merged over --design")


def cmd_designs(args) -> int:
    from .designs import list_designs

    df = list_designs()
    if args.json:
        print(df.to_json(orient="records"))
    else:
        print(df.drop(columns=["description"]).to_string(index=False))
    return 0


def cmd_gemm(args) -> int:
    from . import simulate_gemm

    design = resolve_design(args.design, args.config)
    result = simulate_gemm(args.m, args.n, args.k, design, batch=args.batch, quant=args.quant,
                           group_size=args.group_size)
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
                 + (f"; device {result.device_time_s * 1e6:.3f} us + overhead" if result.device_time_s != result.time_s
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


def build_parser() -> argparse.ArgumentParser:
    """The ``mixpe-sim`` argument parser with every subcommand."""
    parser = _Parser(prog="mixpe-sim", description="Simulate mixed-precision LLM inference accelerators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    p.add_argument("--steps-csv", metavar="FILE", help="write the per-tile-step records as CSV")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_design_args(p)
    p.set_defaults(func=cmd_gemm)

    from . import cli_run
    from . import cli_replay

    cli_run.register(sub)
    cli_replay.register(sub)
    from . import cli_sweep
    cli_sweep.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mixpe-sim``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MixpeError as exc:
        print(f"mixpe-sim {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mixpe-sim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
