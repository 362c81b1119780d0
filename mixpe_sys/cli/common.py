"""What every ``mixpe-sim`` subcommand shares: the one-line-error parser, argument types,
design resolution and table printing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence


EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
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


def _output_error(option: str, message: str):
    from ..errors import ConfigError

    return ConfigError(f"argument {option}: {message}")


def check_output_file(path: str | None, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output file that cannot be written: one in a missing folder,
    under a file, that is a folder, or (when ``suffixes`` are given) with another extension."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        raise _output_error(option, f"'{path}' is a folder; give a file name")
    if suffixes and p.suffix.lower() not in suffixes:
        raise _output_error(option, f"'{path}': unknown extension '{p.suffix}' (write {' or '.join(suffixes)})")
    _check_parent(p, option)


def check_output_dir(path: str | None, option: str) -> None:
    """Refuse, before any work, an output folder that cannot be made: a file, or one whose parent
    folder is missing or not writable (only the last level is created)."""
    if path is None:
        return
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise _output_error(option, f"'{path}' is a file, not a folder")
        if not os.access(p, os.W_OK):
            raise _output_error(option, f"cannot write into folder '{path}'")
        return
    _check_parent(p, option)


def _check_parent(p: Path, option: str) -> None:
    parent = p.parent
    if not parent.exists():
        raise _output_error(option, f"folder '{parent}' does not exist (create it first)")
    if not parent.is_dir():
        raise _output_error(option, f"'{parent}' is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise _output_error(option, f"cannot write into folder '{parent}'")


def resolve_design(name: str, config_file: str | None = None, args: argparse.Namespace | None = None):
    """The design ``name`` (preset or file), with ``config_file`` merged over it when given.

    With ``args``, the files the design's fields come from are kept on it
    (``args.design_sources``), so that an error naming a design field can
    name its file and line too.
    """
    from ..config_base import read_config_data
    from ..designs import design_from_data, design_sources, load_design

    if config_file is None:
        design = load_design(name)
    else:
        data, lines = read_config_data(config_file)
        if isinstance(data, dict) and "extends" not in data and "name" not in data:
            data = {"extends": name, "name": f"{name}+{Path(config_file).stem}", **data}
        elif isinstance(data, dict) and "extends" not in data:
            data = {"extends": name, **data}
        design = design_from_data(data, source=config_file, lines=lines)
    if args is not None:
        args.design_sources = design_sources(name, config_file)
    return design


def locate_error(exc: Exception, args: argparse.Namespace) -> str:
    """The error's one-line message, with the design file and line of the field it names (if known)."""
    from ..designs import field_location
    from ..errors import MappingError

    text = " ".join(str(exc).split())
    field = getattr(exc, "field", None) if isinstance(exc, MappingError) else None
    sources = getattr(args, "design_sources", None)
    if field and sources:
        found = field_location(field, sources)
        if found:
            source, line = found
            return f"{source}:{line}: {text}" if line else f"{source}: {text}"
    return text


def write_atomic(path: str | Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path`` (all or nothing)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def add_no_cache_arg(p) -> None:
    """``--no-cache``: neither read nor write the persistent op-cost cache."""
    p.add_argument("--no-cache", action="store_true",
                   help="bypass the persistent op-cost cache (see `mixpe-sim cache info`); same results")


def add_no_fast_forward_arg(p) -> None:
    """``--no-fast-forward``: simulate every tile step, skipping no repeated period."""
    p.add_argument("--no-fast-forward", action="store_true",
                   help="simulate every repeated period of each GEMM instead of skipping it; same results")


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


def print_units(utilization, top: int = 5, out=None) -> None:
    """Print the busiest units (a frame of ``unit, busy_s, utilization`` rows, busiest first)."""
    if utilization is None or not len(utilization):
        return
    out = out or sys.stdout
    print("  busiest units (busy time / device time):", file=out)
    for row in utilization.head(top).itertuples(index=False):
        print(f"    {row.unit:<34} {row.utilization:7.1%}", file=out)


def add_launch_arg(p: argparse.ArgumentParser) -> None:
    """--launch graph|eager, shared by the subcommands that simulate kernels."""
    p.add_argument("--launch", choices=["graph", "eager"], default="graph",
                   help="how kernels are issued on a design with launch costs (GPU presets): graph = "
                        "replayed from a CUDA graph, as serving runtimes do (default); eager = each kernel "
                        "dispatched from the host and waited for, as host-timed measurements see it")


def add_attention_arg(p: argparse.ArgumentParser) -> None:
    """--attention fused|unfused, shared by the subcommands that build a model's ops."""
    p.add_argument("--attention", choices=["fused", "unfused"], default="fused",
                   help="fused = one FlashAttention-style kernel per layer, the scores never in DRAM (default); "
                        "unfused = QK^T, softmax and PV as three kernels, the scores through DRAM")


def parse_quant(text: str | None, group_size: int | None = None):
    """A QuantScheme from ``--quant`` (None: None) with ``--group-size`` applied."""
    from ..errors import ConfigError
    from ..workload.quant import QuantScheme

    if text is None:
        if group_size is not None:
            raise ConfigError("--group-size: give it with --quant")
        return None
    return QuantScheme.parse(text) if group_size is None else QuantScheme.parse(text, group_size=group_size)
