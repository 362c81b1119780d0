"""LLM serving request traces: load, synthesise, write and summarise.

A request trace is a :class:`pandas.DataFrame`, one row per request, with the
columns ``request_id`` (int64, 0..n-1 in file order), ``arrival_s`` (float,
seconds after the first request, which is at 0.0), ``prompt_tokens`` (int64,
>= 1, prefill work) and ``output_tokens`` (int64, >= 0, decode steps).
Rows are sorted by ``arrival_s`` (stable, so equal arrivals keep file order).
:func:`load_request_trace` reads the Azure CSV, plain CSV and JSONL formats
(:mod:`.request_formats`); :func:`synthetic_requests` generates a seeded trace
(:mod:`.synthetic`). Both are re-exported here, next to the frame helpers
:class:`Request`, :func:`write_request_trace` and :func:`trace_summary`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TraceError
from .request_formats import AZURE_HEADER, GENERIC_HEADER, MAX_TOKENS, TraceFormat, load_request_trace
from .synthetic import CONV_OUTPUT_TOKENS, CONV_PROMPT_TOKENS, LogNormalTokens, synthetic_requests

__all__ = ["COLUMNS", "AZURE_HEADER", "GENERIC_HEADER", "MAX_TOKENS", "Request", "requests_from_frame", "TraceFormat",
           "load_request_trace", "LogNormalTokens", "CONV_PROMPT_TOKENS", "CONV_OUTPUT_TOKENS", "synthetic_requests",
           "write_request_trace", "trace_summary"]

COLUMNS = ("request_id", "arrival_s", "prompt_tokens", "output_tokens")


@dataclass(frozen=True, slots=True)
class Request:
    """One serving request: arrival time (s after the first request) and token counts."""

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


def requests_from_frame(df: pd.DataFrame) -> list[Request]:
    """Convert a request trace frame into :class:`Request` records, in frame order."""
    _check_frame(df)
    cols = [df[c].tolist() for c in COLUMNS]
    return [Request(int(i), float(a), int(p), int(o)) for i, a, p, o in zip(*cols)]


def write_request_trace(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a trace as plain CSV (``.csv``) or JSONL (``.jsonl``/``.ndjson``).

    Rows are written in ``request_id`` order with exact float text, so
    :func:`load_request_trace` returns an equal frame for a frame it produced.
    """
    _check_frame(df)
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise TraceError(f"{os.fspath(path)}: unknown request trace extension '{suffix}'; "
                         f"expected .csv, .jsonl or .ndjson")
    ordered = df.sort_values("request_id", kind="stable")
    cols = zip(*(ordered[c].tolist() for c in GENERIC_HEADER))
    if suffix == ".csv":
        body = [",".join(GENERIC_HEADER)]
        body += [f"{float(a)!r},{int(p)},{int(o)}" for a, p, o in cols]
    else:
        body = [json.dumps({"arrival_s": float(a), "prompt_tokens": int(p), "output_tokens": int(o)})
                for a, p, o in cols]
    Path(path).write_text("\n".join(body) + "\n", encoding="utf-8", newline="\n")


def trace_summary(df: pd.DataFrame) -> dict[str, float | int]:
    """Size, duration (s), token statistics (tokens) and mean arrival rate (requests/s).

    The rate is (requests - 1) / duration, the inverse of the mean
    inter-arrival time; NaN when the duration is 0.
    """
    _check_frame(df)
    if len(df) == 0:
        raise ValueError("trace_summary: the request trace has no rows")
    arrival = df["arrival_s"].to_numpy(dtype=np.float64)
    duration = float(arrival.max() - arrival.min())
    out: dict[str, float | int] = {"requests": int(len(df)), "duration_s": duration}
    for col in ("prompt_tokens", "output_tokens"):
        values = df[col].to_numpy(dtype=np.float64)
        out[f"mean_{col}"] = float(values.mean())
        out[f"p50_{col}"] = float(np.percentile(values, 50))
        out[f"p99_{col}"] = float(np.percentile(values, 99))
    out["mean_arrival_rate_per_s"] = (len(df) - 1) / duration if duration > 0 else math.nan
    return out


def _check_frame(df: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"request trace frame lacks column(s) {', '.join(missing)}; "
                         f"expected {', '.join(COLUMNS)}")
