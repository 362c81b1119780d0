"""Measured hardware data sets stored as CSV: ``# key: value`` header lines, then a table.

A measurement file starts with comment lines that say where the numbers come
from (``# source: ...``, ``# timing: ...``, ``# gpu: ...``), then a CSV
header row and one row per measurement. :func:`read_measurements` checks the
columns a caller needs and their types, and reports a bad row as one line
naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Mapping

import pandas as pd

from .errors import TraceError


def read_measurements(path: str | Path, columns: Mapping[str, type]) -> tuple[dict[str, str], pd.DataFrame]:
    """Read a measurement CSV.

    Parameters
    ----------
    path:
        The file.
    columns:
        Required columns and their types (``int``, ``float`` or ``str``); other columns are kept as text.

    Returns
    -------
    (meta, frame):
        The ``# key: value`` header lines, and one row per measurement with typed columns.

    Raises
    ------
    TraceError
        Unreadable file, missing column, or a value of the wrong type or not finite / positive
        (numbers must be > 0), naming ``file:line: field``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read measurements: {exc.strerror}") from None
    meta: dict[str, str] = {}
    lines = text.splitlines()
    first = 0
    while first < len(lines) and (lines[first].startswith("#") or not lines[first].strip()):
        key, sep, value = lines[first].lstrip("#").partition(":")
        if sep:
            meta[key.strip()] = value.strip()
        first += 1
    if first == len(lines):
        raise TraceError(f"{path}: no header row")
    reader = csv.reader(lines[first:])
    header = [h.strip() for h in next(reader)]
    missing = [c for c in columns if c not in header]
    if missing:
        raise TraceError(f"{path}:{first + 1}: field '{missing[0]}': missing column (have: {', '.join(header)})")
    rows = []
    for offset, values in enumerate(reader, start=first + 2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise TraceError(f"{path}:{offset}: expected {len(header)} fields, got {len(values)}")
        row = {}
        for name, raw in zip(header, values):
            raw = raw.strip()
            tp = columns.get(name, str)
            if tp is str:
                row[name] = raw
                continue
            try:
                value = tp(raw)
            except ValueError:
                raise TraceError(f"{path}:{offset}: field '{name}': expected {tp.__name__}, got {raw!r}") from None
            if not math.isfinite(value) or value <= 0:
                raise TraceError(f"{path}:{offset}: field '{name}': must be a positive number, got {raw!r}")
            row[name] = value
        rows.append(row)
    return meta, pd.DataFrame(rows, columns=header)
