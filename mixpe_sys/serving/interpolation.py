"""Anchor grid and estimates for the interpolated cost model.

A family of ops whose shapes grow with one or two sizes (the tokens of an
iteration, or a sequence's new tokens and KV length) is simulated only at
anchor sizes: every size up to ``exact_tokens``, then multiples of
``exact_tokens`` spaced ``anchors_per_octave`` per doubling. An op at any
other size costs its analytic base time (for array ops the mapper's
estimate for the tiling it picks, which counts partly filled tiles and DRAM
traffic; the roofline for vector ops and for clearly memory-bound array
ops) plus the simulated time above that
base, interpolated linearly in log size between the anchors around it
(bilinearly for two sizes; along the diagonal when the sizes are equal,
e.g. a whole prompt attending to itself). Energy is the base time times the
anchors' energy per base nanosecond, interpolated the same way. The base
carries the growth of the work and the tiling; the simulated excess
(pipeline fill, latencies, contention) varies slowly. Estimates are not
exact: the replay benchmark reports their error against simulated costs.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from itertools import product
from typing import Callable, Sequence

from ..hw.config import AcceleratorConfig
from ..hw.launch import kernel_overhead_ns
from ..sim.engine import CostCache
from ..mapping.gemm import choose_tiling
from ..sim.op_sim import op_roofline_ns
from ..workload.ops import Op


@dataclass(frozen=True, slots=True)
class Cost:
    """Time (ns) and energy (J, NaN when the hardware model gives none) of some ops."""

    time_ns: float
    energy_j: float

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.time_ns + other.time_ns, self.energy_j + other.energy_j)

    def scaled(self, factor: float) -> "Cost":
        return Cost(self.time_ns * factor, self.energy_j * factor)


ZERO = Cost(0.0, 0.0)

MEMORY_BOUND_FACTOR = 2.0
"""An array op whose DRAM time is at least this times its compute time is costed from its roofline
(tiling cannot make it faster than streaming its operands once)."""


def op_energy_j(cost) -> float:
    """Energy of an op cost (J); NaN when the cost carries none."""
    return float(getattr(cost, "energy_j", math.nan))


def exact_cost(ops: Sequence[Op], cache: CostCache) -> Cost:
    """Sum of the simulated costs of ``ops``."""
    t = e = 0.0
    for op in ops:
        c = cache.cost(op)
        t += c.time_ns
        e += op_energy_j(c)
    return Cost(t, e)


class AnchorGrid:
    """Sizes simulated exactly: 1..``exact``, then multiples of ``exact``, ``per_octave`` per doubling."""

    def __init__(self, exact: int, per_octave: int):
        if exact < 1 or per_octave < 1:
            raise ValueError(f"exact and per_octave must be >= 1, got {exact}, {per_octave}")
        self.exact = exact
        self.per_octave = per_octave
        self._grid = [exact]

    @property
    def anchors(self) -> tuple[int, ...]:
        """The anchors above ``exact`` built so far (tokens), ascending, ``exact`` first."""
        return tuple(self._grid)

    def _extend(self, value: int) -> None:
        i = len(self._grid)
        while self._grid[-1] < value:
            g = self.exact * math.ceil(2 ** (i / self.per_octave) - 1e-9)
            if g > self._grid[-1]:
                self._grid.append(g)
            i += 1

    def bracket(self, value: int) -> tuple[int, int, float]:
        """Anchors ``lo <= value <= hi`` and the weight of ``hi`` (log-linear); ``lo == hi`` on an anchor."""
        if value <= self.exact:
            return value, value, 0.0
        self._extend(value)
        i = bisect.bisect_left(self._grid, value)
        hi = self._grid[i]
        if hi == value:
            return value, value, 0.0
        lo = self._grid[i - 1]
        return lo, hi, math.log(value / lo) / math.log(hi / lo)

    def corners(self, sizes: tuple[int, ...]) -> list[tuple[tuple[int, ...], float]]:
        """Anchor points around ``sizes`` with their weights (summing to 1)."""
        if len(set(sizes)) == 1:  # on the diagonal: interpolate along it
            lo, hi, w = self.bracket(sizes[0])
            pts = [((lo,) * len(sizes), 1.0 - w)]
            return pts if lo == hi else pts + [((hi,) * len(sizes), w)]
        per_dim = []
        for s in sizes:
            lo, hi, w = self.bracket(s)
            per_dim.append([(lo, 1.0)] if lo == hi else [(lo, 1.0 - w), (hi, w)])
        out = []
        for combo in product(*per_dim):
            weight = 1.0
            for _, w in combo:
                weight *= w
            out.append((tuple(v for v, _ in combo), weight))
        return out


class Interpolator:
    """Estimates the cost of an op family at any size from its simulated anchors.

    Parameters
    ----------
    design:
        The accelerator (for the analytic base times).
    cache:
        Shared exact cost cache; anchors are simulated through it.
    grid:
        Anchor sizes.
    """

    def __init__(self, design: AcceleratorConfig, cache: CostCache, grid: AnchorGrid):
        self.design = design
        self.cache = cache
        self.grid = grid
        self._anchor_cache: dict[tuple, list[tuple[float, float]]] = {}
        self._launch_ns = kernel_overhead_ns(design.launch, cache.launch)

    def base_ns(self, op: Op) -> float:
        """Analytic time of ``op`` (ns): the mapper's estimate for array ops that are not clearly
        memory-bound, the roofline otherwise (vector ops, decode attention)."""
        memory, compute = op_roofline_ns(op, self.design)
        if op.kind.on_array and memory < MEMORY_BOUND_FACTOR * compute:
            tiling = choose_tiling(op.gemm_spec(), self.design)
            return tiling.estimated_time_s * 1e9 + self._launch_ns
        return max(memory, compute) + self._launch_ns

    def _anchors(self, family: str, point: tuple[int, ...],
                 build: Callable[..., Sequence[Op]]) -> list[tuple[float, float]]:
        """Per op at an anchor: (simulated - base time (ns), energy per base ns (J/ns))."""
        key = (family, point)
        hit = self._anchor_cache.get(key)
        if hit is None:
            hit = []
            for op in build(*point):
                c = self.cache.cost(op)
                b = self.base_ns(op)
                hit.append((c.time_ns - b, op_energy_j(c) / b if b > 0 else math.nan))
            self._anchor_cache[key] = hit
        return hit

    def cost(self, family: str, sizes: tuple[int, ...], build: Callable[..., Sequence[Op]]) -> Cost:
        """Cost of the ops ``build(*sizes)`` (simulated when ``sizes`` are anchors)."""
        corners = self.grid.corners(sizes)
        if len(corners) == 1:
            return exact_cost(build(*sizes), self.cache)
        anchors = [(self._anchors(family, pt, build), w) for pt, w in corners]
        t = e = 0.0
        for i, op in enumerate(build(*sizes)):
            b = self.base_ns(op)
            t += b + sum(w * a[i][0] for a, w in anchors)
            e += b * sum(w * a[i][1] for a, w in anchors)
        return Cost(t, e)
