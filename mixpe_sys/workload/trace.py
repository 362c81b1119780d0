"""Operator traces: one op per line, JSONL or CSV, with a versioned schema.

JSONL: the first line is a header object ``{"schema": "mixpe-op-trace",
"version": 1, ...metadata}``; every further line is one op object with the
fields of :class:`~mixpe_sys.workload.ops.Op`. CSV: a first line
``# mixpe-op-trace v1``, then a header row naming the fields, then one op per
row. Missing optional fields take the Op defaults. Any bad row raises
:class:`TraceError` naming ``file:line: field``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable

from ..errors import TraceError
from ..limits import MAX_DIM
from .ops import OP_FIELDS, Op, OpKind, Phase
from .quant import NumberFormat

SCHEMA = "mixpe-op-trace"
VERSION = 1
_REQUIRED = ("name", "kind")
_ENUMS = {"kind": OpKind, "phase": Phase, "activation_format": NumberFormat}
_INT_FIELDS = tuple(f.name for f in dataclasses.fields(Op) if f.type in ("int", int))
_BIT_FIELDS = ("weight_bits", "activation_bits", "output_bits", "scale_bits", "zero_bits")
MAX_BITS = 32
"""Widest operand, scale or zero point a trace row may give (bits), as :class:`QuantScheme` allows."""
SUFFIXES = (".jsonl", ".csv")


def _op_to_row(op: Op) -> dict[str, Any]:
    row = {}
    for name in OP_FIELDS:
        v = getattr(op, name)
        row[name] = v.value if hasattr(v, "value") else v
    return row


def write_trace(ops: Iterable[Op], path: str | Path, **metadata: Any) -> int:
    """Write ``ops`` to ``path`` (``.jsonl`` or ``.csv``); return the number written.

    The file is written under a temporary name and renamed when complete.

    Raises
    ------
    TraceError
        For another extension than ``.jsonl`` or ``.csv``.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise TraceError(f"{path}: unknown operator trace extension '{path.suffix}' (write .jsonl or .csv)")
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() == ".csv":
            fh.write(f"# {SCHEMA} v{VERSION} {json.dumps(metadata)}\n")
            writer = csv.DictWriter(fh, fieldnames=list(OP_FIELDS))
            writer.writeheader()
            for op in ops:
                writer.writerow(_op_to_row(op))
                count += 1
        else:
            fh.write(json.dumps({"schema": SCHEMA, "version": VERSION, **metadata}) + "\n")
            for op in ops:
                fh.write(json.dumps(_op_to_row(op)) + "\n")
                count += 1
    tmp.replace(path)
    return count


def _parse_row(raw: dict[str, Any], source: str, line: int) -> Op:
    def fail(field: str, msg: str, value: Any = None) -> TraceError:
        got = f" (got {str(value)[:40]!r})" if value is not None else ""
        return TraceError(f"{source}:{line}: field '{field}': {msg}{got}")

    for key in raw:
        if key not in OP_FIELDS:
            raise fail(key, f"unknown field (known: {', '.join(OP_FIELDS)})")
    kwargs: dict[str, Any] = {}
    for name in OP_FIELDS:
        if name not in raw or raw[name] in ("", None):
            if name in _REQUIRED:
                raise fail(name, "missing required field")
            continue
        value = raw[name]
        if name in _ENUMS:
            try:
                kwargs[name] = _ENUMS[name](value)
            except ValueError:
                allowed = ", ".join(m.value for m in _ENUMS[name])
                raise fail(name, f"unknown value (choose from: {allowed})", value) from None
        elif name == "name":
            kwargs[name] = str(value)
        else:
            try:
                number = int(value) if not isinstance(value, float) or value.is_integer() else None
            except (TypeError, ValueError):
                number = None
            if number is None or isinstance(value, bool):
                raise fail(name, "expected an integer", value)
            if number < 0 and name != "layer":
                raise fail(name, "must be >= 0", value)
            limit = MAX_BITS if name in _BIT_FIELDS else MAX_DIM
            if abs(number) > limit:
                raise fail(name, f"must be <= {limit:,} ({'bits' if name in _BIT_FIELDS else 'mixpe_sys.limits'})",
                           value)
            kwargs[name] = number
    op = Op(**kwargs)
    if op.kind.on_array or op.kind is OpKind.ATTENTION:
        for name in ("m", "n", "k", "batch", "weight_bits", "activation_bits", "output_bits", "query_group"):
            if getattr(op, name) <= 0:
                raise fail(name, f"must be > 0 for a {op.kind.value} op", getattr(op, name))
        if op.kind is OpKind.ATTENTION and (op.m % op.query_group or op.m // op.query_group > op.n):
            raise fail("query_group", f"must divide m ({op.m}) into at most n ({op.n}) tokens", op.query_group)
    else:
        for name in ("elements",):
            if getattr(op, name) <= 0:
                raise fail(name, f"must be > 0 for a {op.kind.value} op", getattr(op, name))
    return op


def read_trace_lines(path: str | Path) -> tuple[dict[str, Any], list[Op], list[int]]:
    """Read a JSONL or CSV op trace; return (metadata, ops, the 1-based file line of each op).

    Raises
    ------
    TraceError
        On an unreadable file, a wrong schema or version, a bad row (``file:line: field``), or no ops.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{source}: cannot read trace: {getattr(exc, 'strerror', None) or exc}") from None
    lines = text.splitlines()
    if not lines:
        raise TraceError(f"{source}:1: empty trace file")
    ops: list[Op] = []
    numbers: list[int] = []
    if path.suffix.lower() == ".csv":
        head = lines[0].strip()
        prefix = f"# {SCHEMA} v"
        if not head.startswith(prefix):
            raise TraceError(f"{source}:1: field 'schema': expected a first line '# {SCHEMA} v{VERSION}'")
        version_text, _, meta_text = head[len(prefix):].partition(" ")
        if version_text != str(VERSION):
            raise TraceError(f"{source}:1: field 'version': unsupported version {version_text!r} (reads {VERSION})")
        try:
            meta = json.loads(meta_text) if meta_text.strip() else {}
        except json.JSONDecodeError:
            raise TraceError(f"{source}:1: field 'metadata': malformed JSON after the version") from None
        reader = csv.reader(lines[1:])
        try:
            header = next(reader)
        except StopIteration:
            raise TraceError(f"{source}:2: field 'header': missing header row") from None
        for name in header:
            if name not in OP_FIELDS:
                raise TraceError(f"{source}:2: field '{name}': unknown column (known: {', '.join(OP_FIELDS)})")
        for offset, cells in enumerate(reader, start=3):
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise TraceError(f"{source}:{offset}: field '{header[min(len(cells), len(header)) - 1]}': "
                                 f"expected {len(header)} columns, got {len(cells)}")
            ops.append(_parse_row(dict(zip(header, cells)), source, offset))
            numbers.append(offset)
        return meta, _nonempty(ops, source, len(lines)), numbers
    try:
        meta = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise TraceError(f"{source}:1: field 'schema': malformed JSON header ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise TraceError(f"{source}:1: field 'schema': expected a header object with schema '{SCHEMA}'")
    if meta.get("version") != VERSION:
        raise TraceError(f"{source}:1: field 'version': unsupported version {meta.get('version')!r} (reads {VERSION})")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{source}:{number}: field '<row>': malformed JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise TraceError(f"{source}:{number}: field '<row>': expected a JSON object")
        ops.append(_parse_row(raw, source, number))
        numbers.append(number)
    meta = {k: v for k, v in meta.items() if k not in ("schema", "version")}
    return meta, _nonempty(ops, source, len(lines)), numbers


def read_trace(path: str | Path) -> tuple[dict[str, Any], list[Op]]:
    """Read a JSONL or CSV op trace; return (metadata, ops) (see :func:`read_trace_lines`)."""
    meta, ops, _ = read_trace_lines(path)
    return meta, ops


def _nonempty(ops: list[Op], source: str, nlines: int) -> list[Op]:
    if not ops:
        raise TraceError(f"{source}:{nlines}: field '<row>': the trace has a header but no ops")
    return ops
