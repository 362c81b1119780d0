"""Request-trace readers: the Azure CSV, plain CSV and JSONL file formats, with row validation.

Three file formats are read, recognised by the first line:

* Azure LLM inference CSV, header ``TIMESTAMP,ContextTokens,GeneratedTokens``,
  timestamps ``YYYY-MM-DD HH:MM:SS[.fraction]`` (up to 9 fractional digits,
  parsed exactly to the nanosecond);
* plain CSV, header ``arrival_s,prompt_tokens,output_tokens`` (seconds);
* JSONL, one JSON object per line with the keys ``arrival_s``,
  ``prompt_tokens`` and ``output_tokens`` (other keys are ignored).

CSV columns may come in any order; fields are separated by commas without
quoting. Blank lines are skipped. A malformed row raises :class:`TraceError`
with the message ``FILE:LINE: field 'NAME': what is wrong (got 'VALUE')``.
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, TraceError

AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
GENERIC_HEADER = ("arrival_s", "prompt_tokens", "output_tokens")
MAX_TOKENS = 1_000_000_000
"""Largest token count accepted in a trace (anything above is a corrupt field)."""
MAX_ARRIVAL_S = 1e9
"""Latest arrival accepted (s after the first request; about 32 years): beyond it a time is a corrupt field,
and its nanoseconds would overflow the simulation clock's precision."""

_INT_RE = r"[+-]?0*[0-9]{1,10}"
_TS_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_SHOWN_CHARS = 60


class TraceFormat(str, enum.Enum):
    """File format of a request trace."""

    AZURE = "azure"
    CSV = "csv"
    JSONL = "jsonl"


class _Kind(enum.Enum):
    TIMESTAMP = "timestamp"
    SECONDS = "seconds"
    TOKENS = "tokens"


@dataclass(frozen=True)
class _Field:
    name: str        # as spelled in the file
    target: str      # output column
    kind: _Kind
    minimum: int = 0


_GENERIC_FIELDS = (_Field("arrival_s", "arrival_s", _Kind.SECONDS),
                   _Field("prompt_tokens", "prompt_tokens", _Kind.TOKENS, 1),
                   _Field("output_tokens", "output_tokens", _Kind.TOKENS, 0))
_SCHEMAS: dict[TraceFormat, tuple[_Field, ...]] = {
    TraceFormat.AZURE: (_Field("TIMESTAMP", "arrival_s", _Kind.TIMESTAMP),
                        _Field("ContextTokens", "prompt_tokens", _Kind.TOKENS, 1),
                        _Field("GeneratedTokens", "output_tokens", _Kind.TOKENS, 0)),
    TraceFormat.CSV: _GENERIC_FIELDS,
    TraceFormat.JSONL: _GENERIC_FIELDS,
}


def load_request_trace(path: str | os.PathLike, *, limit: int | None = None,
                       rate_scale: float = 1.0) -> pd.DataFrame:
    """Read a request trace (Azure CSV, plain CSV or JSONL, detected from line 1).

    Parameters
    ----------
    path:
        Trace file.
    limit:
        Keep only the first ``limit`` requests of the file (file order); later
        rows are neither read nor checked. None keeps all.
    rate_scale:
        Arrival-rate multiplier: arrival times (s) are divided by it, so 2.0
        replays the trace twice as fast.

    Returns
    -------
    pandas.DataFrame
        Columns ``request_id, arrival_s, prompt_tokens, output_tokens`` (s, tokens);
        ``attrs["source"]`` is the file and ``attrs["lines"][request_id]`` the request's line.

    Raises
    ------
    TraceError
        Unreadable or empty file, unknown header, or a malformed row
        (``FILE:LINE: field 'NAME': ... (got 'VALUE')``).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"field 'limit': must be an integer >= 1 or None, got {limit!r}")
    if (isinstance(rate_scale, bool) or not isinstance(rate_scale, (int, float))
            or not math.isfinite(rate_scale) or rate_scale <= 0):
        raise ConfigError(f"field 'rate_scale': must be a finite number > 0, got {rate_scale!r}")
    src = os.fspath(path)
    lines = _read_lines(path, src)
    if not any(line.strip() for line in lines):
        raise TraceError(f"{src}:1: empty request trace; expected a header line "
                         f"({_expected_headers()})")
    if lines[0].lstrip().startswith("{"):
        fmt, fields, order = TraceFormat.JSONL, _SCHEMAS[TraceFormat.JSONL], None
        rows = _data_lines(lines, 0, limit)
    else:
        fmt, fields, order = _detect_csv(lines[0], src)
        rows = _data_lines(lines, 1, limit)
    if not rows[0]:
        raise TraceError(f"{src}:1: no requests in the trace ({fmt.value} format)")
    if fmt is TraceFormat.JSONL:
        arrival, prompt, output = _parse_jsonl(rows, fields, src)
    else:
        arrival, prompt, output = _parse_csv(rows, fields, order, src)
    df = _build_frame(arrival, prompt, output, rate_scale)
    span = float(df["arrival_s"].iloc[-1]) if len(df) else 0.0
    if not span <= MAX_ARRIVAL_S:
        raise TraceError(f"{src}: field 'arrival_s': the arrivals spread over {span:g} s (rate scale "
                         f"{rate_scale:g}), beyond {MAX_ARRIVAL_S:g} s")
    # where each request came from (request_id = file order), for messages about a request
    df.attrs = {"source": src, "lines": list(rows[0])}
    return df


def _expected_headers() -> str:
    return (f"'{','.join(AZURE_HEADER)}' (Azure), '{','.join(GENERIC_HEADER)}' (CSV) "
            f"or one JSON object per line (JSONL)")


def _shown(value: str) -> str:
    value = value.strip()
    if len(value) > _SHOWN_CHARS:
        value = value[:_SHOWN_CHARS - 3] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def _row_error(src: str, line: int, field: str, problem: str, value: str) -> TraceError:
    return TraceError(f"{src}:{line}: field '{field}': {problem} (got '{_shown(value)}')")


def _read_lines(path: str | os.PathLike, src: str) -> list[str]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TraceError(f"{src}: cannot read request trace ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise TraceError(f"{src}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    # Only "\n" ends a physical line; a trailing "\r" (CRLF files) is stripped with the fields.
    return text.split("\n")


def _data_lines(lines: list[str], first: int, limit: int | None) -> tuple[list[int], list[str]]:
    """1-based line numbers and texts of the non-blank lines from index ``first``."""
    numbers: list[int] = []
    texts: list[str] = []
    for idx in range(first, len(lines)):
        text = lines[idx]
        if text.strip():
            numbers.append(idx + 1)
            texts.append(text)
            if limit is not None and len(texts) == limit:
                break
    return numbers, texts


def _detect_csv(header: str, src: str) -> tuple[TraceFormat, tuple[_Field, ...], list[int]]:
    """Format, fields and, per field, its column index in the file."""
    names = [name.strip() for name in header.split(",")]
    for fmt in (TraceFormat.AZURE, TraceFormat.CSV):
        fields = _SCHEMAS[fmt]
        if sorted(names) == sorted(f.name for f in fields):
            return fmt, fields, [names.index(f.name) for f in fields]
    raise TraceError(f"{src}:1: unknown request trace header '{_shown(header)}'; "
                     f"expected {_expected_headers()}")


def _parse_csv(rows: tuple[list[int], list[str]], fields: tuple[_Field, ...], order: list[int],
               src: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    numbers, texts = rows
    width = len(fields)
    parts = [t.split(",") for t in texts]
    ncols = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    bad = ncols != width
    values: list[np.ndarray] = []
    oks: list[np.ndarray] = []
    columns: list[list[str]] = []
    for f, col in zip(fields, order):
        cells = [p[col].strip() if len(p) == width else "" for p in parts]
        vals, ok = _PARSERS[f.kind](pd.Series(cells, dtype=object), f.minimum)
        values.append(vals)
        oks.append(ok)
        columns.append(cells)
        bad |= ~ok
    if bad.any():
        i = int(np.argmax(bad))
        by_file_column = sorted(range(width), key=lambda k: order[k])
        n_cols = int(ncols[i])
        if n_cols < width:
            raise _row_error(src, numbers[i], fields[by_file_column[n_cols]].name,
                             f"missing column (row has {n_cols} of {width} columns)", texts[i])
        if n_cols > width:
            raise _row_error(src, numbers[i], fields[by_file_column[-1]].name,
                             f"unexpected column after it (row has {n_cols} columns, "
                             f"expected {width})", texts[i])
        for k in by_file_column:
            if not oks[k][i]:
                f = fields[k]
                raise _row_error(src, numbers[i], f.name, _REASONS[f.kind](columns[k][i], f.minimum),
                                 columns[k][i])
    return values[0], values[1], values[2]


def _parse_tokens(cells: pd.Series, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    ok = cells.str.fullmatch(_INT_RE).to_numpy(dtype=bool, na_value=False)
    vals = np.zeros(len(cells), dtype=np.int64)
    if ok.any():
        vals[ok] = np.asarray(cells[ok].tolist(), dtype=str).astype(np.int64)
    ok = ok & (vals >= minimum) & (vals <= MAX_TOKENS)
    return vals, ok


def _tokens_reason(text: str, minimum: int) -> str:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return "not an integer"
    value = int(text)
    if value < 0:
        return "negative token count"
    if value < minimum:
        return f"must be >= {minimum}"
    if value > MAX_TOKENS:
        return f"too large (max {MAX_TOKENS})"
    return "malformed integer"


def _parse_seconds(cells: pd.Series, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    vals = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(vals) & (vals >= minimum) & (vals <= MAX_ARRIVAL_S)
    return vals, ok


def _seconds_reason(text: str, minimum: int) -> str:
    return f"must be a number of seconds in [{minimum}, {MAX_ARRIVAL_S:g}]"


def _parse_timestamps(cells: pd.Series, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds since 1970 (int64) and validity of ``YYYY-MM-DD HH:MM:SS[.f]`` cells."""
    shape_ok = cells.str.fullmatch(_TS_RE).to_numpy(dtype=bool, na_value=False)
    norm = cells.where(shape_ok, "1970-01-01 00:00:00.0").str.replace("T", " ", regex=False)
    norm = norm.where(norm.str.contains(".", regex=False), norm + ".0")
    stamps = pd.to_datetime(norm, format=_TS_FORMAT, errors="coerce")
    ok = shape_ok & stamps.notna().to_numpy()
    ns = stamps.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return np.where(ok, ns, 0), ok


def _timestamp_reason(text: str, minimum: int) -> str:
    if not re.fullmatch(_TS_RE, text):
        return "not a timestamp 'YYYY-MM-DD HH:MM:SS[.fraction]'"
    return "invalid or out-of-range date/time"


_PARSERS = {_Kind.TOKENS: _parse_tokens, _Kind.SECONDS: _parse_seconds,
            _Kind.TIMESTAMP: _parse_timestamps}
_REASONS = {_Kind.TOKENS: _tokens_reason, _Kind.SECONDS: _seconds_reason,
            _Kind.TIMESTAMP: _timestamp_reason}


def _parse_jsonl(rows: tuple[list[int], list[str]], fields: tuple[_Field, ...],
                 src: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    numbers, texts = rows
    out: list[list[Any]] = [[] for _ in fields]
    for line, text in zip(numbers, texts):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{src}:{line}: invalid JSON ({exc.msg} at column {exc.colno}) "
                             f"(got '{_shown(text)}')") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{src}:{line}: expected a JSON object with keys "
                             f"{', '.join(GENERIC_HEADER)} (got '{_shown(text)}')")
        for f, column in zip(fields, out):
            if f.name not in obj:
                raise _row_error(src, line, f.name, "missing key", text)
            value = obj[f.name]
            if f.kind is _Kind.TOKENS:
                good = (isinstance(value, int) and not isinstance(value, bool)
                        and f.minimum <= value <= MAX_TOKENS)
                problem = f"must be an integer in [{f.minimum}, {MAX_TOKENS}]"
            else:
                good = (isinstance(value, (int, float)) and not isinstance(value, bool)
                        and math.isfinite(value) and f.minimum <= value <= MAX_ARRIVAL_S)
                problem = _seconds_reason("", f.minimum)
            if not good:
                raise _row_error(src, line, f.name, problem, json.dumps(value))
            column.append(value)
    return (np.asarray(out[0], dtype=np.float64), np.asarray(out[1], dtype=np.int64),
            np.asarray(out[2], dtype=np.int64))


def _build_frame(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                 rate_scale: float) -> pd.DataFrame:
    """Sort by arrival (stable), make arrivals relative to the first and scale them."""
    # Differences taken before the float conversion keep timestamps exact to the ns.
    rel = (arrival - arrival.min()).astype(np.float64)
    if arrival.dtype == np.int64:
        rel = rel / 1e9
    order = np.argsort(rel, kind="stable")
    with np.errstate(over="ignore"):  # an overflow to inf is refused by the caller, naming the field
        arrival_s = rel[order] / float(rate_scale)
    return pd.DataFrame({
        "request_id": order.astype(np.int64),
        "arrival_s": arrival_s,
        "prompt_tokens": prompt[order].astype(np.int64),
        "output_tokens": output[order].astype(np.int64),
    })
