"""Laying a tiling out as tile steps: which compute tile runs which output blocks, and the
bytes and addresses of every step (geometry only; the hardware times the steps)."""

from __future__ import annotations

from math import ceil

from ..errors import MappingError
from ..hw.config import AcceleratorConfig
from ..hw.plan import GemmPlan, GemmTiling, LoopOrder, TileStep
from ..workload.gemm_spec import GemmSpec

_ALIGN_BYTES = 4096


def lay_out(spec: GemmSpec, accel: AcceleratorConfig, tiling: GemmTiling) -> GemmPlan:
    """Cut ``spec`` into each compute tile's steps under ``tiling``.

    Output blocks ``(inst, i, j)`` are enumerated in the loop order and split
    into ``tiling.tiles`` (0: all the design's tiles) contiguous, near-equal
    shares, one for each of the tiles ``0 .. tiling.tiles - 1``; the others
    stay idle. Each block runs its K
    steps back to back and writes its output after the last. Each tile starts
    its blocks' K loops at its own K slice (:func:`k_rotation`) and wraps
    around, so tiles working on the same row block at the same time ask for
    different activation tiles.
    """
    tm, tn, tk = tiling.tm, tiling.tn, tiling.tk
    nb_i, nb_j, nk = ceil(spec.m / tm), ceil(spec.n / tn), ceil(spec.k / tk)
    if tiling.order is LoopOrder.M_OUTER:
        blocks = [(b, i, j) for b in range(spec.batch) for i in range(nb_i) for j in range(nb_j)]
    else:
        blocks = [(b, i, j) for b in range(spec.batch) for j in range(nb_j) for i in range(nb_i)]
    a_full, w_full = spec.activation_bytes(tm, tk), spec.weight_bytes(tk, tn)
    a_base = 0
    w_base = _align(spec.batch * nb_i * nk * a_full)
    o_base = w_base + _align(spec.batch * nb_j * nk * w_full)
    o_full = spec.output_bytes(tm, tn)
    T = tiling.tiles or accel.num_tiles
    if T > accel.num_tiles:
        raise MappingError(f"field 'tiles': the tiling uses {T} compute tiles, the design '{accel.name}' has "
                           f"{accel.num_tiles}")
    per_tile: list[tuple[TileStep, ...]] = []
    for t in range(T):
        lo, hi = (len(blocks) * t) // T, (len(blocks) * (t + 1)) // T
        steps: list[TileStep] = []
        prev_a = prev_w = None
        rotation = k_rotation(t, nk)
        for b, i, j in blocks[lo:hi]:
            m = min(tm, spec.m - i * tm)
            n = min(tn, spec.n - j * tn)
            for pos in range(nk):
                kk = (pos + rotation) % nk
                k = min(tk, spec.k - kk * tk)
                a_key, w_key = (b, i, kk), (b, j, kk)
                load_a, load_w = a_key != prev_a, w_key != prev_w
                prev_a, prev_w = a_key, w_key
                a_bytes = spec.activation_bytes(m, k) if load_a else 0
                w_bytes = spec.weight_bytes(k, n) if load_w else 0
                last = pos == nk - 1
                steps.append(TileStep(
                    index=len(steps), inst=b, i=i, j=j, kk=pos, k_slice=kk, m=m, n=n, k=k,
                    a_key=a_key if load_a else None, a_bytes=a_bytes,
                    a_addr=a_base + ((b * nb_i + i) * nk + kk) * a_full,
                    w_key=w_key if load_w else None, w_bytes=w_bytes,
                    w_addr=w_base + ((b * nb_j + j) * nk + kk) * w_full,
                    store_bytes=spec.output_bytes(m, n) if last else 0,
                    store_addr=o_base + ((b * nb_i + i) * nb_j + j) * o_full))
        per_tile.append(tuple(steps))
    per_tile += [()] * (accel.num_tiles - T)
    return GemmPlan(spec=spec, tiling=tiling, steps=tuple(per_tile))


#: 1 / golden ratio: multiples of it modulo 1 spread evenly however many are taken
_GOLDEN = (5 ** 0.5 - 1) / 2


def k_rotation(tile: int, nk: int) -> int:
    """The K slice at which tile ``tile`` starts each output block's ``nk`` K steps.

    The starts follow the golden-ratio sequence, so any run of consecutive tiles (the tiles
    that share a row block) starts at nearly evenly spread K slices: each activation tile is
    first asked for, and staged from DRAM, by about one tile while the others find it staged.
    The order of the K steps only changes the order of the partial sums.
    """
    return int((tile * _GOLDEN) % 1.0 * nk)


def _align(nbytes: int) -> int:
    return ceil(nbytes / _ALIGN_BYTES) * _ALIGN_BYTES
