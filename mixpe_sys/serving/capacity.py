"""Capacity search: the largest arrival-rate scale whose replay meets latency targets (SLOs).

A probe replays the trace with every arrival time divided by a scale ``s``
(``s = 2`` offers twice the trace's rate) and meets the SLOs when the p99
time to first token and the p99 time per output token are both at or below
their targets (a replay without multi-token requests has no TPOT and meets
that target). The search starts at ``start``, doubles (or halves) the scale
until the outcome flips, then bisects the bracket geometrically until
``hi / lo <= 1 + tolerance``. The result is the largest scale that met the
SLOs. The search assumes latency does not fall as load rises; the curve of
every probe is returned so the assumption can be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from .config import ServingError

CURVE_COLUMNS = ("rate_scale", "offered_requests_per_s", "served_requests_per_s", "offered_to_served",
                 "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "peak_waiting", "meets_slo")


def scale_arrivals(requests: pd.DataFrame, scale: float) -> pd.DataFrame:
    """The trace with arrival times divided by ``scale`` (its rate times ``scale``)."""
    if not scale > 0:
        raise ServingError(f"rate scale must be > 0, got {scale}")
    return requests.assign(arrival_s=requests["arrival_s"] / scale)


def meets_slo(summary: dict[str, Any], ttft_p99_s: float, tpot_p99_s: float) -> bool:
    """True when the replay's p99 TTFT and p99 TPOT are within the targets (s)."""
    tpot = summary["tpot_p99_s"]
    tpot_ok = tpot is None or (isinstance(tpot, float) and math.isnan(tpot)) or tpot <= tpot_p99_s
    return summary["ttft_p99_s"] <= ttft_p99_s and tpot_ok


@dataclass(frozen=True)
class CapacityResult:
    """The search's answer, the replay summary at it and every probe (the latency-vs-load curve)."""

    max_rate_scale: float  # 0.0 when even the smallest scale tried misses the SLOs
    slo_ttft_p99_s: float
    slo_tpot_p99_s: float
    trace_rate_per_s: float
    curve: pd.DataFrame = field(repr=False)
    at: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def max_requests_per_s(self) -> float:
        """Offered rate at the answer (requests/s)."""
        return self.max_rate_scale * self.trace_rate_per_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures: ``max_rate_scale``, the rate, the SLOs and the percentiles at the answer."""
        at = self.at or {}

        def num(v):
            return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

        return {"max_rate_scale": self.max_rate_scale, "max_requests_per_s": num(self.max_requests_per_s),
                "trace_rate_per_s": num(self.trace_rate_per_s), "slo_ttft_p99_s": self.slo_ttft_p99_s,
                "slo_tpot_p99_s": self.slo_tpot_p99_s, "probes": len(self.curve),
                **{k: num(at.get(k)) for k in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s",
                                               "throughput_tokens_per_s", "served_requests_per_s",
                                               "peak_waiting")}}


def find_capacity(requests: pd.DataFrame, replay: Callable[[pd.DataFrame], dict[str, Any]], *,
                  slo_ttft_p99_s: float, slo_tpot_p99_s: float, start: float = 1.0, tolerance: float = 0.05,
                  max_probes: int = 30, min_scale: float = 2.0 ** -12, max_scale: float = 2.0 ** 12) -> CapacityResult:
    """Bisect the arrival-rate scale for the largest one meeting both SLOs.

    Parameters
    ----------
    requests:
        Request trace frame.
    replay:
        Replays a (scaled) trace and returns its summary (``ttft_p99_s``, ``tpot_p99_s``, ...).
    slo_ttft_p99_s, slo_tpot_p99_s:
        Targets for the p99 time to first token and p99 time per output token (s).
    start:
        First scale tried.
    tolerance:
        Stop when the bracket ``hi / lo`` is at most ``1 + tolerance``.
    max_probes:
        Most replays.
    min_scale, max_scale:
        Give up bracketing below / above these scales.
    """
    if not (slo_ttft_p99_s > 0 and slo_tpot_p99_s > 0):
        raise ServingError(f"SLOs must be > 0 s, got TTFT {slo_ttft_p99_s}, TPOT {slo_tpot_p99_s}")
    if not tolerance > 0:
        raise ServingError(f"tolerance must be > 0, got {tolerance}")
    n = len(requests)
    window = float(requests["arrival_s"].max() - requests["arrival_s"].min()) if n else 0.0
    trace_rate = (n - 1) / window if window > 0 else math.nan
    probes: dict[float, dict[str, Any]] = {}

    def ok(scale: float) -> bool:
        if scale not in probes:
            probes[scale] = replay(scale_arrivals(requests, scale))
        return meets_slo(probes[scale], slo_ttft_p99_s, slo_tpot_p99_s)

    lo, hi = None, None
    s = start
    if ok(s):
        lo = s
        while len(probes) < max_probes and s * 2 <= max_scale:
            s *= 2
            if not ok(s):
                hi = s
                break
            lo = s
    else:
        hi = s
        while len(probes) < max_probes and s / 2 >= min_scale:
            s /= 2
            if ok(s):
                lo = s
                break
            hi = s
    if lo is not None and hi is not None:
        while hi / lo > 1 + tolerance and len(probes) < max_probes:
            mid = math.sqrt(lo * hi)
            if ok(mid):
                lo = mid
            else:
                hi = mid
    rows = []
    for scale in sorted(probes):
        sm = probes[scale]
        rows.append((scale, sm.get("offered_requests_per_s", math.nan), sm.get("served_requests_per_s", math.nan),
                     sm.get("offered_to_served", math.nan), sm["ttft_p50_s"], sm["ttft_p99_s"], sm["tpot_p50_s"],
                     sm["tpot_p99_s"], sm.get("peak_waiting", 0), meets_slo(sm, slo_ttft_p99_s, slo_tpot_p99_s)))
    curve = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return CapacityResult(max_rate_scale=lo or 0.0, slo_ttft_p99_s=slo_ttft_p99_s, slo_tpot_p99_s=slo_tpot_p99_s,
                          trace_rate_per_s=trace_rate, curve=curve, at=probes.get(lo) if lo else None)
