"""Choosing a GEMM's tiling: the candidate tile sizes, loop orders, dataflows and numbers of
compute tiles, each estimated (:mod:`.estimate`); the best estimates are then laid out and run on
the hardware model itself, and the fastest run is kept.

The estimate is an account of how the tiles will run a tiling (median error about 5 % over
random shapes on the shipped designs; its errors are largest for small or oddly shaped GEMMs
whose few steps are dominated by latencies and the uneven last round). Ranking a shortlist by
the simulation removes those errors where they matter.

More hardware is never slower by construction: a tiling may use tiles ``0 .. t - 1`` of a design
for ``t`` in :func:`tile_counts` (all, half, a quarter, ...), and what each such class simulates
depends on the class alone (its candidates and estimates do not see the tiles beyond it) and on
the estimates on the design's clock and DRAM bandwidth halved zero or more times down to fixed
floors (:func:`slower_designs`). A design with twice the tiles, clock or DRAM bandwidth therefore
simulates every tiling the smaller design simulates (on the same tiles: idle tiles book nothing;
on a star interconnect the routes are the same) and keeps the fastest; and the same plan never
runs slower on faster hardware, because the shared units serve requests in a static order
(:mod:`mixpe_sys.hw.tile`), a max-plus system. So it is never slower."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import ceil

import numpy as np

from ..errors import ConfigError, MappingError
from ..limits import MAX_TILE_STEPS
from ..hw.accelerator import Accelerator, drained
from ..hw.config import AcceleratorConfig
from ..hw.plan import GemmTiling, LoopOrder
from ..hw.tile_step import StepTimer, pe_rate
from ..workload.gemm_spec import GemmSpec
from .estimate import Estimator, stacked_figures
from .layout import lay_out, lower_bound_ns

#: the mapper accepts a tiling this much slower (estimated) than the fastest if it moves fewer DRAM bytes
#: (or as many in fewer tile steps)
TIME_SLACK = 0.01
#: at most this many tilings, the best estimates, are laid out and simulated
SHORTLIST = 4
#: ... among those estimated within this fraction of the best estimate
SHORTLIST_WITHIN = 0.25
#: ... and only those of at most this many tile steps (larger GEMMs are regular, and estimated well)
SHORTLIST_MAX_STEPS = 512
#: a tile-count class whose candidates have at most this many tile steps in all is simulated whole
SIMULATE_ALL_STEPS = 1024
#: ... and in any class, every candidate of at most this many tile steps is simulated (a few ms each)
SIMULATE_UP_TO_STEPS = 64


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


def choose_tiling(spec: GemmSpec, accel: AcceleratorConfig, fast_forward: bool = True) -> GemmTiling:
    """Pick tile sizes, loop order and dataflow (see :func:`_choose_tiling`; memoised, a pure function;
    ``fast_forward``: whether the runs that rank the shortlist skip repeated periods, the same pick
    either way)."""
    return _choose_tiling(spec, accel, fast_forward)


@lru_cache(maxsize=4096)
def _choose_tiling(spec: GemmSpec, accel: AcceleratorConfig, fast_forward: bool = True) -> GemmTiling:
    """Pick tile sizes, loop order, dataflow and number of tiles (:func:`_shortlist_winner`).

    Candidates, for each number of tiles ``t`` of :func:`tile_counts` (:func:`_candidates`): for
    each K tile, the largest row tile that fits the activation slot and a few halvings of it, and
    column tiles of powers of two times the array width and of the widths that cut N into about
    1/2, 1, 3/2, 2, 3 or 4 blocks per tile of the ``t`` (so that every tile gets work in as even
    shares as the array width allows).

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
    timers = {df: StepTimer(accel, spec, df) for df in arr.dataflows}
    geometries = {t: _candidates(spec, accel, t, (a_slot, w_slot, o_slot)) for t in tile_counts(accel.num_tiles)}
    if any(geometries.values()):
        return _shortlist_winner(spec, accel, geometries, timers, shared, fast_forward)
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


def simulated(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling, fast_forward: bool = True) -> Accelerator:
    """The accelerator after running ``tiling`` laid out on ``accel``, idle to drained
    (:func:`~mixpe_sys.hw.accelerator.drained`, ``fast_forward`` or not: the same figures; memoised, a
    pure function: the mapper ranks its shortlist by these runs, and an op's cost reuses its winner's;
    read only)."""
    return _simulated(spec, accel, tiling, fast_forward)


@lru_cache(maxsize=16)
def _simulated(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling, fast_forward: bool) -> Accelerator:
    return drained(lay_out(spec, accel, tiling), accel, fast_forward)


def tile_counts(num_tiles: int) -> list[int]:
    """The numbers of compute tiles a tiling may use on a design of ``num_tiles``: all, half, a quarter,
    ... down to one (rounded down). A design with twice the tiles has each of these and one more."""
    out, t = [], num_tiles
    while t >= 1:
        out.append(t)
        t //= 2
    return out


def _candidates(spec: GemmSpec, accel: AcceleratorConfig, T: int, slots: tuple[int, int, int]) -> list[tuple]:
    """The candidate tilings ``(tm, tn, tk, order, dataflow, tile steps, K split)`` that share the output
    blocks over tiles ``0 .. T - 1``: they depend on the design only through its tile (buffers, array)."""
    tile = accel.tile
    arr = tile.pe_array
    a_slot, w_slot, o_slot = slots
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
            # column blocks per tile, so that every tile gets work in as even shares as the array width allows
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
                blocks, nk = spec.batch * ceil(spec.m / tm) * ceil(spec.n / tn), ceil(spec.k / tk)
                cands += [(tm, tn, tk, order, df, blocks * nk, 1) for order in orders for df in arr.dataflows]
                # fewer output blocks than tiles: K split into 2, 4, ... ranges, while every range
                # has work for a tile of its own and its partial sums fit a slot
                split = 2
                while blocks * split <= T and split <= nk and ceil(tm * tn * tile.accumulator_bits / 8) <= a_slot:
                    cands += [(tm, tn, tk, LoopOrder.M_OUTER, df, blocks * (nk + split), split)
                              for df in arr.dataflows]
                    split *= 2
    return cands


def _estimated(estimator: Estimator, timers: dict, geometries: list[tuple], T: int) -> list[tuple]:
    """``(estimates s, DRAM bytes, steps, order, dataflow, tiling)`` of each of ``geometries`` on ``T`` tiles on
    the designs of ``estimator`` (an array of estimates, one per design; the tiling holds the first's)."""
    out = []
    for tm, tn, tk, order, df, steps, split in geometries:
        if split == 1:
            est, _, traffic = estimator.estimate(timers[df], order, tm, tn, tk, T)
        else:
            est, traffic = estimator.split_estimate(df, tm, tn, tk, T, split)
        est = np.atleast_1d(est)
        out.append((est, traffic, steps, order.value, df.value,
                    GemmTiling(tm, tn, tk, order, df, float(est[0]), T, split)))
    return out


def _rank(c: tuple, at: int) -> tuple:
    """Sort key of an estimated tiling ``c`` (:func:`_estimated`) by its estimate on design number
    ``at``; ties: less DRAM traffic, fewer steps, more tiles, then the tiling itself."""
    return (c[0][at], c[1], c[2], -c[5].tiles, c[3], c[4], c[5].tm, c[5].tn, c[5].tk, c[5].split_k)


def _class_pick(cands: list[tuple], at: int = 0) -> tuple:
    """The estimate's pick on design number ``at``: within ``TIME_SLACK`` of the fastest estimate, the
    least DRAM traffic, then fewer steps."""
    limit = min(c[0][at] for c in cands) * (1 + TIME_SLACK)
    return min((c for c in cands if c[0][at] <= limit), key=lambda c: (c[1], c[2], *_rank(c, at)))


def _class_shortlist(cands: list[tuple], at: int = 0) -> list[tuple]:
    """The tilings of one tile-count class to simulate, by the estimates on design number ``at``: the
    estimate's pick (:func:`_class_pick`) and the best estimates (see ``SHORTLIST*``)."""
    pick = _class_pick(cands, at)
    reach = min(c[0][at] for c in cands) * (1 + SHORTLIST_WITHIN)
    near = sorted((c for c in cands if c is not pick and c[0][at] <= reach), key=lambda c: _rank(c, at))
    return ([pick] + near)[:SHORTLIST]


#: the slowest DRAM (bytes/s) and clock (Hz) :func:`slower_designs` halves down to (absolute, so that
#: the designs a design with twice the bandwidth or clock halves down to include this design's)
FLOOR_DRAM_BYTES_PER_S = 32e9
FLOOR_FREQUENCY_HZ = 250e6


def _halvings(value: float, floor: float) -> list[float]:
    """``value`` and its halvings while they stay at or above ``floor`` (``value`` alone below it)."""
    out = [value]
    while out[-1] / 2 >= floor:
        out.append(out[-1] / 2)
    return out


def slower_designs(accel: AcceleratorConfig) -> list[AcceleratorConfig]:
    """``accel`` (first) and it with every combination of its DRAM bandwidth and clock halved zero or
    more times down to ``FLOOR_DRAM_BYTES_PER_S`` and ``FLOOR_FREQUENCY_HZ``.

    A design with twice the DRAM bandwidth or twice the clock (both at or above the floors) has
    every one of these designs among its own, so it shortlists at least every tiling this design
    shortlists (:func:`_shortlist_winner`)."""
    out = []
    for bw in _halvings(accel.dram.bandwidth_bytes_per_s, FLOOR_DRAM_BYTES_PER_S):
        for hz in _halvings(accel.frequency_hz, FLOOR_FREQUENCY_HZ):
            if bw == accel.dram.bandwidth_bytes_per_s and hz == accel.frequency_hz:
                out.append(accel)
                continue
            try:
                out.append(accel.replace(dram=accel.dram.replace(bandwidth_bytes_per_s=bw), frequency_hz=hz))
            except ConfigError:  # below a limit of mixpe_sys.limits (the same for every design)
                break
    return out


def _shortlist_winner(spec: GemmSpec, accel: AcceleratorConfig, geometries: dict[int, list[tuple]], timers: dict,
                      shared: bool, fast_forward: bool = True) -> GemmTiling:
    """The tiling to use among the candidate ``geometries`` of each tile-count class: the fastest
    simulated run of a set of tilings (ties: less traffic, fewer steps, more tiles).

    The set, per class, by the estimates on this design and on each of :func:`slower_designs`
    (one array of estimates per tiling): when some candidate has at most ``SHORTLIST_MAX_STEPS``
    tile steps, either every such candidate (when they have at most ``SIMULATE_ALL_STEPS`` steps in
    all) or those of at most ``SIMULATE_UP_TO_STEPS`` steps and each slower design's shortlist
    (:func:`_class_shortlist`) of them; and of the candidates of more steps, each slower design's
    pick; of these, those of at most ``MAX_TILE_STEPS`` steps (:mod:`mixpe_sys.limits`; when none is,
    the best estimate, which a run refuses). The set depends on the class and on the designs of
    :func:`slower_designs` alone, so a
    design with twice the tiles, the DRAM bandwidth or the clock simulates every tiling this one
    simulates, and since the same plan never runs slower on it, it is never slower.
    """
    designs = slower_designs(accel)
    estimator = Estimator(spec, accel, stacked_figures(designs), shared)
    short: dict[tuple, tuple] = {}

    def keep(c: tuple, t: int) -> None:
        short[c[5].tm, c[5].tn, c[5].tk, c[3], c[4], t, c[5].split_k] = c

    for t, geoms in geometries.items():
        small = [g for g in geoms if g[5] <= SHORTLIST_MAX_STEPS]
        big = [g for g in geoms if g[5] > SHORTLIST_MAX_STEPS]
        if small:
            own = _estimated(estimator, timers, small, t)
            if sum(g[5] for g in small) <= SIMULATE_ALL_STEPS:  # small GEMMs, whose estimates err most
                for c in own:
                    keep(c, t)
            else:
                for c in own:
                    if c[2] <= SIMULATE_UP_TO_STEPS:
                        keep(c, t)
                for at in range(len(designs)):
                    for c in _class_shortlist(own, at):
                        keep(c, t)
        if big:
            # a tiling of more steps (more, smaller blocks: every tile busy) can beat every small one
            # by far, e.g. W4A16 256 x 4096 x 4096 on a100-like: 16 blocks of 512 steps in all against
            # 104 blocks of 1,664 steps, 5.6x faster
            theirs = _estimated(estimator, timers, big, t)
            for at in range(len(designs)):
                keep(_class_pick(theirs, at), t)
    cands = list(short.values())
    if all(c[2] > MAX_TILE_STEPS for c in cands):
        # too many steps to run (mixpe_sys.checks refuses it, naming the count): the best estimate
        return _class_pick(cands)[5]
    # best estimates first; a tiling whose lower bound is above the fastest run so far cannot win
    cands.sort(key=lambda c: _rank(c, 0))
    best = None
    for i, c in enumerate(cands):
        if c[2] > MAX_TILE_STEPS:
            continue
        if best is not None and lower_bound_ns(spec, accel, c[5], timers[c[5].dataflow]) > best[0]:
            continue
        run = (simulated(spec, accel, c[5], fast_forward).env.now, c[1], c[2], -c[5].tiles, i)
        best = run if best is None else min(best, run)
    return cands[best[4]][5]
