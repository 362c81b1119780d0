"""The mapper's lower bound against the simulation: draw random GEMM shapes, and on every shipped design
lay out the mapper's tiling and its variants (each tile count of :func:`~mixpe_sys.mapping.tiling.tile_counts`,
half the row, column and K tile) and print how many plans were checked, how many had a bound above
their simulated time (a bound that prunes wrongly; must be 0) and the largest bound / time.

    python benchmarks/lower_bound_check.py [--seed 5] [--shapes 6]

Shapes as in ``more_hardware.py``; plans of more than ``--max-steps`` tile steps are skipped. Run time
is printed in reference seconds (benchmarks/refsec.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from mixpe_sys import design_names, load_design
from mixpe_sys.errors import MixpeError
from mixpe_sys.hw.accelerator import plan_time_lower_bound_ns, plan_time_ns
from mixpe_sys.mapping.layout import lay_out
from mixpe_sys.mapping.tiling import choose_tiling, tile_counts

from more_hardware import spec_for
from refsec import reference_seconds, simpy_rate


def variants(tiling, num_tiles: int):
    """The tiling on each tile count, and with half its row, column or K tile."""
    for t in tile_counts(num_tiles):
        yield dataclasses.replace(tiling, tiles=t)
    for field in ("tm", "tn", "tk"):
        if getattr(tiling, field) > 1:
            yield dataclasses.replace(tiling, **{field: getattr(tiling, field) // 2})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--shapes", type=int, default=6)
    p.add_argument("--max-steps", type=int, default=20000)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    rate = simpy_rate()
    t0 = time.perf_counter()
    checked = above = 0
    worst = (0.0, None)
    for _ in range(args.shapes):
        m = int(np.exp(rng.uniform(0, np.log(4096))))
        n, k = (int(np.exp(rng.uniform(np.log(16), np.log(8192)))) for _ in range(2))
        for name in design_names():
            design = load_design(name)
            spec = spec_for(design, m, n, k)
            try:
                chosen = choose_tiling(spec, design)
            except MixpeError:
                continue
            for tiling in variants(chosen, design.num_tiles):
                try:
                    plan = lay_out(spec, design, tiling)
                    if sum(len(s) for s in plan.steps) > args.max_steps:
                        continue
                    ratio = plan_time_lower_bound_ns(plan, design) / plan_time_ns(plan, design)
                except MixpeError:  # a variant that does not fit its buffers
                    continue
                checked += 1
                above += ratio > 1
                if ratio > worst[0]:
                    worst = (ratio, f"{name} {m} x {n} x {k} {tiling}")
    wall = time.perf_counter() - t0
    print(f"{checked} plans, {wall:.0f} s wall, {reference_seconds(wall, rate):.0f} reference s")
    print(f"bound above the simulated time: {above}; largest bound / time {worst[0]:.6f} ({worst[1]})")


if __name__ == "__main__":
    main()
