"""Results of a serving replay: per-request and per-iteration tables and the summary figures.

Definitions (seconds):

* TTFT = time of the first output token - arrival (queueing plus the
  prefill iteration that produces the first token);
* TPOT = (finish - first token) / (output_tokens - 1) for requests with more
  than one output token, NaN otherwise;
* end-to-end latency (e2e) = finish - arrival.

``output_tokens`` in the request table is the number of tokens served: at
least 1 (a request with 0 output tokens is served as one with 1).

Throughput is output tokens per second of the replay's span (first arrival
to last finish). The offered rate is ``(n - 1)`` requests over the first to
last arrival (the trace's mean arrival rate), the served rate the completed
requests over the span; when the offered rate is well above the served
rate the system was overloaded and the queue grew through the trace. Percentiles are linear-interpolated (``numpy.percentile``)
over the completed requests.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..hw.config import AcceleratorConfig
from .config import ServingConfig

REQUEST_COLUMNS = ("request_id", "arrival_s", "first_token_s", "finish_s", "ttft_s", "tpot_s", "e2e_s",
                   "prompt_tokens", "output_tokens", "preemptions")
ITERATION_COLUMNS = ("start_s", "end_s", "sequences", "prefill_tokens", "decode_tokens", "time_s",
                     "output_tokens", "energy_j", "kv_used_tokens", "waiting")


def requests_frame(rows: list[tuple]) -> pd.DataFrame:
    """Per-request table from rows ``(request_id, arrival_ns, first_token_ns, finish_ns, prompt, output,
    preemptions)`` (times in ns); derives TTFT, TPOT and e2e (s)."""
    raw = pd.DataFrame(rows, columns=["request_id", "arrival_ns", "first_ns", "finish_ns", "prompt_tokens",
                                      "output_tokens", "preemptions"])
    arrival = raw["arrival_ns"].to_numpy(dtype=np.float64)
    first = raw["first_ns"].to_numpy(dtype=np.float64)
    finish = raw["finish_ns"].to_numpy(dtype=np.float64)
    out = raw["output_tokens"].to_numpy(dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(out > 1, (finish - first) / np.maximum(out - 1, 1), np.nan) * 1e-9
    df = pd.DataFrame({
        "request_id": raw["request_id"].astype(np.int64),
        "arrival_s": arrival * 1e-9, "first_token_s": first * 1e-9, "finish_s": finish * 1e-9,
        "ttft_s": (first - arrival) * 1e-9, "tpot_s": tpot, "e2e_s": (finish - arrival) * 1e-9,
        "prompt_tokens": raw["prompt_tokens"].astype(np.int64), "output_tokens": raw["output_tokens"].astype(np.int64),
        "preemptions": raw["preemptions"].astype(np.int64),
    })
    return df.sort_values("request_id", kind="stable").reset_index(drop=True)


def served_requests_frame(seqs) -> pd.DataFrame:
    """Per-request table (see :func:`requests_frame`) of served :class:`~.sequence.Sequence` objects."""
    return requests_frame([(s.request_id, s.arrival_ns, s.first_token_ns, s.finish_ns, s.prompt_tokens,
                            s.output_tokens, s.preemptions) for s in seqs])


def serving_fields(config: ServingConfig) -> dict[str, Any]:
    """The summary's serving options: batching, batch and token limits, chunked prefill, cost model."""
    return {"batching": config.batching.value, "max_batch": config.max_batch,
            "max_batched_tokens": config.max_batched_tokens, "chunked_prefill": config.chunked_prefill,
            "cost_model": config.cost_model.value}


def iterations_frame(rows: list[tuple]) -> pd.DataFrame:
    """Per-iteration table from rows ``(start_ns, end_ns, sequences, prefill, decode, output, energy_j,
    kv_used_tokens, waiting)``."""
    raw = pd.DataFrame(rows, columns=["start_ns", "end_ns", "sequences", "prefill_tokens", "decode_tokens",
                                      "output_tokens", "energy_j", "kv_used_tokens", "waiting"])
    start = raw["start_ns"].to_numpy(dtype=np.float64)
    end = raw["end_ns"].to_numpy(dtype=np.float64)
    df = pd.DataFrame({"start_s": start * 1e-9, "end_s": end * 1e-9})
    for col in ("sequences", "prefill_tokens", "decode_tokens"):
        df[col] = raw[col].astype(np.int64)
    df["time_s"] = (end - start) * 1e-9
    df["output_tokens"] = raw["output_tokens"].astype(np.int64)
    df["energy_j"] = raw["energy_j"].astype(np.float64)
    df["kv_used_tokens"] = raw["kv_used_tokens"].astype(np.int64)
    df["waiting"] = raw["waiting"].astype(np.int64)
    return df[list(ITERATION_COLUMNS)]


def _pct(values: pd.Series, q: float) -> float:
    v = values.to_numpy(dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(np.percentile(v, q)) if len(v) else math.nan


def summarise(requests: pd.DataFrame, iterations: pd.DataFrame) -> dict[str, Any]:
    """Headline figures of a replay (s, tokens, J); JSON-ready."""
    done = requests[requests["finish_s"].notna()]
    out_tokens = int(done["output_tokens"].sum())
    span = float(done["finish_s"].max() - requests["arrival_s"].min()) if len(done) else 0.0
    energy = float(iterations["energy_j"].sum(skipna=False)) if len(iterations) else math.nan
    busy = float(iterations["time_s"].sum())
    summary: dict[str, Any] = {
        "requests": int(len(requests)), "completed": int(len(done)),
        "prompt_tokens": int(done["prompt_tokens"].sum()), "output_tokens": out_tokens,
        "duration_s": span, "busy_s": busy,
        "throughput_tokens_per_s": out_tokens / span if span > 0 else math.nan,
        "requests_per_s": len(done) / span if span > 0 else math.nan,
    }
    for name in ("ttft", "tpot", "e2e"):
        col = done[f"{name}_s"]
        summary[f"{name}_mean_s"] = float(col.mean()) if col.notna().any() else math.nan
        summary[f"{name}_p50_s"] = _pct(col, 50)
        summary[f"{name}_p99_s"] = _pct(col, 99)
    summary.update({
        "energy_j": energy, "energy_per_token_j": energy / out_tokens if out_tokens else math.nan,
        "preemptions": int(requests["preemptions"].sum()),
        "preempted_requests": int((requests["preemptions"] > 0).sum()),
        "iterations": int(len(iterations)),
        "mean_batch_sequences": float(iterations["sequences"].mean()) if len(iterations) else math.nan,
        "peak_waiting": int(iterations["waiting"].max()) if len(iterations) else 0,
    })
    summary.update(offered_load(requests, summary["requests_per_s"]))
    summary["load_statement"] = load_statement(summary)
    return summary


def offered_load(requests: pd.DataFrame, served_requests_per_s: float) -> dict[str, float]:
    """Offered rate (``(n - 1)`` over first to last arrival, requests/s), served rate (completed requests over
    first arrival to last finish) and their ratio (NaN when the requests all arrive at once)."""
    arrival = requests["arrival_s"].to_numpy(dtype=np.float64)
    window = float(arrival.max() - arrival.min()) if len(arrival) else 0.0
    offered = (len(arrival) - 1) / window if window > 0 else math.nan
    ratio = offered / served_requests_per_s if served_requests_per_s and served_requests_per_s > 0 else math.nan
    return {"offered_requests_per_s": offered, "served_requests_per_s": served_requests_per_s,
            "offered_to_served": ratio}


def load_statement(summary: dict[str, Any]) -> str:
    """One sentence: the offered load against what was served, and the queue's peak."""
    queue = f"the queue peaked at {summary['peak_waiting']:,} waiting requests"
    served = summary["served_requests_per_s"]
    if math.isnan(summary["offered_to_served"]):
        return f"all {summary['requests']:,} requests arrived at once; served {served:.3g} requests/s; {queue}"
    return (f"offered {summary['offered_to_served']:.2f}x the rate it served ({summary['offered_requests_per_s']:.3g} "
            f"vs {served:.3g} requests/s); {queue}")


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass(frozen=True)
class ReplayResult:
    """A replay's ``requests`` and ``iterations`` tables and its ``summary`` figures."""

    requests: pd.DataFrame = field(repr=False)
    iterations: pd.DataFrame = field(repr=False)
    summary: dict[str, Any]
    config: ServingConfig = field(repr=False)
    design: AcceleratorConfig | None = field(default=None, repr=False)

    def to_json(self) -> str:
        """The summary as one JSON object (NaN as null)."""
        return json.dumps({k: _json_value(v) for k, v in self.summary.items()})

    def write(self, outdir: str | Path) -> list[Path]:
        """Write ``requests.csv``, ``iterations.csv`` and ``summary.json`` into ``outdir``.

        Each file is written under a temporary name and renamed, so it is
        either complete or absent.
        """
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, write in (("requests.csv", lambda p: self.requests.to_csv(p, index=False)),
                            ("iterations.csv", lambda p: self.iterations.to_csv(p, index=False)),
                            ("summary.json", lambda p: p.write_text(self.to_json() + "\n", encoding="utf-8"))):
            tmp = outdir / f".{name}.tmp"
            write(tmp)
            tmp.replace(outdir / name)
            written.append(outdir / name)
        return written
