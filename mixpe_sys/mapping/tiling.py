"""Choosing a GEMM's tiling: the candidate tile sizes, loop orders and dataflows, each
estimated (:mod:`.estimate`); the best estimates are then laid out and run on the hardware
model itself, and the fastest run is kept.

The estimate is an account of how the tiles will run a tiling (median error about 5 % over
random shapes on the shipped designs; its errors are largest for small or oddly shaped GEMMs
whose few steps are dominated by latencies and the uneven last round). Ranking a shortlist by
the simulation removes those errors where they matter: the chosen tiling is the fastest of the
shortlist as the simulation runs it, so more hardware, which makes each tiling at least as fast,
cannot make the choice slower through an estimation error."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import ceil

from ..errors import MappingError
from ..hw.accelerator import plan_time_ns
from ..hw.config import AcceleratorConfig
from ..hw.plan import GemmTiling, LoopOrder
from ..hw.tile_step import StepTimer, pe_rate
from ..workload.gemm_spec import GemmSpec
from .estimate import design_figures, estimate
from .layout import lay_out

#: the mapper accepts a tiling this much slower (estimated) than the fastest if it moves fewer DRAM bytes
#: (or as many in fewer tile steps)
TIME_SLACK = 0.01
#: at most this many tilings, the best estimates, are laid out and simulated
SHORTLIST = 4
#: ... among those estimated within this fraction of the best estimate
SHORTLIST_WITHIN = 0.25
#: ... and only those of at most this many tile steps (larger GEMMs are regular, and estimated well)
SHORTLIST_MAX_STEPS = 512


def _pow2_upto(limit: int, start: int = 1) -> list[int]:
    out, v = [], start
    while v < limit:
        out.append(v)
        v *= 2
    out.append(limit)
    return out


def _k_candidates(spec: GemmSpec) -> list[int]:
    base = spec.group_size if spec.group_size else 16
    cands = [k for k in _pow2_upto(spec.k, base) if k == spec.k or k % base == 0]
    return sorted(set(cands), reverse=True)


def _fit_largest(cands: list[int], fits) -> int | None:
    best = None
    for c in cands:
        if fits(c):
            best = c if best is None else max(best, c)
    return best


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def choose_tiling(spec: GemmSpec, accel: AcceleratorConfig) -> GemmTiling:
    """Pick tile sizes, loop order and dataflow (see :func:`_choose_tiling`; memoised, a pure function)."""
    return _choose_tiling(spec, accel)


@lru_cache(maxsize=4096)
def _choose_tiling(spec: GemmSpec, accel: AcceleratorConfig) -> GemmTiling:
    """Pick tile sizes, loop order and dataflow minimising the estimated time (:func:`_estimate`).

    Candidates: for each K tile, the largest row tile that fits the activation slot and a
    few halvings of it, and column tiles of powers of two times the array width and of the
    widths that cut N into about 1/2, 1, 3/2, 2, 3 or 4 blocks per compute tile (so that
    every tile gets work in as even shares as the array width allows). Among tilings within
    ``TIME_SLACK`` of the fastest estimate, the one with the least DRAM traffic wins (then
    the one with fewer steps, then the faster).

    Raises
    ------
    MappingError
        If no tile fits the buffers, or the PE cannot multiply these operands.
    """
    tile = accel.tile
    arr = tile.pe_array
    pe_rate(spec, accel)  # MappingError if the PE cannot multiply these operands
    a_slot = tile.activation_buffer.slot_bytes
    if accel.global_buffer is not None:
        a_slot = min(a_slot, accel.global_buffer.slot_bytes)
    w_slot, o_slot = tile.weight_buffer.slot_bytes, tile.output_buffer.slot_bytes
    shared = accel.global_buffer is not None
    d = design_figures(accel)
    timers = {df: StepTimer(accel, spec, df) for df in arr.dataflows}
    T = accel.num_tiles
    tn_pow2 = sorted({min(spec.n, c) for c in _pow2_upto(spec.n, arr.cols)}
                     | {min(spec.n, _round_up(ceil(spec.n / T), arr.cols))})
    tm_cands = _pow2_upto(spec.m)
    cands: list[tuple] = []
    seen: set = set()
    for tk in _k_candidates(spec):
        tm_max = _fit_largest(tm_cands, lambda tm: spec.activation_bytes(tm, tk) <= a_slot)
        tn_max = _fit_largest(tn_pow2, lambda tn: spec.weight_bytes(tk, tn) <= w_slot)
        if tm_max is None or tn_max is None:
            continue
        tms = [tm_max] + [tm_max >> s for s in (1, 2) if (tm_max >> s) >= arr.rows]
        for tm0 in tms:
            nb_i = ceil(spec.m / tm0)
            tns = {tn for tn in tn_pow2 if tn <= tn_max}
            # column blocks per tile: the halves keep the choices of half as many tiles among the
            # candidates, so a design with twice the tiles can still pick what the smaller one picked
            for per_tile in (Fraction(1, 2), 1, Fraction(3, 2), 2, 3, 4):
                target = int(per_tile * T) // (spec.batch * nb_i)
                if target >= 1:
                    tn = min(spec.n, _round_up(ceil(spec.n / target), arr.cols))
                    if spec.weight_bytes(tk, tn) <= w_slot:
                        tns.add(tn)
            for tn in sorted(tns):
                tm = tm0
                while tm > 1 and ceil(tm * tn * tile.accumulator_bits / 8) > o_slot:
                    tm = max(1, tm // 2)
                if ceil(tm * tn * tile.accumulator_bits / 8) > o_slot or (tm, tn, tk) in seen:
                    continue
                seen.add((tm, tn, tk))
                # with several K steps every step reloads both operands in either order: same estimate
                orders = list(LoopOrder) if ceil(spec.k / tk) == 1 else [LoopOrder.M_OUTER]
                for order in orders:
                    for df in arr.dataflows:
                        est, steps, traffic = estimate(spec, accel, d, timers[df], order, tm, tn, tk, shared)
                        cands.append((est, traffic, steps, order.value, df.value,
                                      GemmTiling(tm, tn, tk, order, df, est)))
    if cands:
        return _shortlist_winner(spec, accel, cands)
    kmin = min(spec.k, spec.group_size or 16)
    checks = [("activation_buffer", a_slot, spec.activation_bytes(1, kmin)),
              ("weight_buffer", w_slot, spec.weight_bytes(kmin, 1)),
              ("output_buffer", o_slot, ceil(tile.accumulator_bits / 8))]
    if accel.global_buffer is not None and accel.global_buffer.slot_bytes < checks[0][2]:
        checks.insert(0, ("global_buffer", accel.global_buffer.slot_bytes, checks[0][2]))
    name, slot, need = next(((n, s, need) for n, s, need in checks if s < need),
                            ("activation_buffer", a_slot, checks[0][2]))
    field = name if name == "global_buffer" else f"tile.{name}"
    raise MappingError(
        f"field '{field}.capacity_bytes': no tile of GEMM m={spec.m} n={spec.n} k={spec.k} fits "
        f"(a slot holds {slot} B, the smallest tile needs {need} B)")


def _shortlist_winner(spec: GemmSpec, accel: AcceleratorConfig, cands: list[tuple]) -> GemmTiling:
    """The tiling to use among the estimated candidates ``(estimate s, DRAM bytes, steps, ..., tiling)``.

    By the estimate: within ``TIME_SLACK`` of the fastest estimate, the least DRAM traffic
    (energy), then fewer steps (simulation speed). Then the shortlist (that tiling and the best
    estimates, see ``SHORTLIST*``) is simulated and the fastest run wins (ties: less traffic,
    fewer steps).
    """
    best_est = min(c[0] for c in cands)
    limit = best_est * (1 + TIME_SLACK)
    pick = min(((c[1], c[2], c[0], c[3], c[4], c[5].tm, c[5].tn, c[5].tk), c) for c in cands if c[0] <= limit)[1]
    ranked = sorted(cands, key=lambda c: (c[0], c[1], c[2], c[3], c[4], c[5].tm, c[5].tn, c[5].tk))
    short = [pick] + [c for c in ranked if c is not pick and c[0] <= best_est * (1 + SHORTLIST_WITHIN)]
    short = [c for c in short[:SHORTLIST] if c[2] <= SHORTLIST_MAX_STEPS]
    if len(short) < 2:
        return pick[5]
    runs = [(plan_time_ns(lay_out(spec, accel, c[5]), accel), c[1], c[2], i) for i, c in enumerate(short)]
    return short[min(runs)[3]][5]
