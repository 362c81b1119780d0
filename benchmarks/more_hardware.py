"""More hardware should never be slower: draw random GEMM shapes, run each on every shipped design and
on the same design with twice the tiles, twice the DRAM bandwidth and twice the clock, and print the
worst slow-down found for each (a ratio above 1 is an inversion), where each inversion comes from, and
the mapper's estimate error.

    python benchmarks/more_hardware.py [--seed 0] [--shapes 10]

Shapes: M log-uniform in 1..4096, N and K log-uniform in 16..8192 (most not powers of two). An
inversion is put down to FCFS queueing when the smaller design's own plan runs slower on the larger
design, and to the mapper's choice otherwise. Run time is printed in reference seconds
(benchmarks/refsec.py).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mixpe_sys import design_names, load_design
from mixpe_sys.errors import MixpeError
from mixpe_sys.hw.accelerator import plan_time_ns
from mixpe_sys.mapping.layout import lay_out
from mixpe_sys.hw.precision import run_quant
from mixpe_sys.sim.gemm import simulate_gemm
from mixpe_sys.workload.gemm_spec import GemmSpec

from refsec import reference_seconds, simpy_rate

#: a ratio above this is an inversion; below it, float rounding of sums of ns (about 1e-15 relative)
ROUNDING = 1e-9


def spec_for(design, m: int, n: int, k: int) -> GemmSpec:
    """The GEMM at the design's own quantization (weight groups only where K is a multiple of the group)."""
    q = run_quant(design)
    grouped = q.quantized_weights and q.group_size > 0 and k % q.group_size == 0
    return GemmSpec(m=m, n=n, k=k, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, output_bits=16,
                    group_size=q.group_size if grouped else 0, scale_bits=q.scale_bits, zero_bits=q.zero_bits)


def _more(design):
    return {"tiles": design.replace(num_tiles=2 * design.num_tiles),
            "dram": design.replace(dram=design.dram.replace(bandwidth_bytes_per_s=2 * design.dram.bandwidth_bytes_per_s)),
            "clock": design.replace(frequency_hz=2 * design.frequency_hz)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shapes", type=int, default=10)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    worst: dict[str, tuple] = {}
    inversions = {what: {"fcfs": 0, "choice": 0} for what in ("tiles", "dram", "clock")}
    errors = []
    cases = 0
    rate = simpy_rate()
    t0 = time.perf_counter()
    for _ in range(args.shapes):
        m = int(np.exp(rng.uniform(0, np.log(4096))))
        n, k = (int(np.exp(rng.uniform(np.log(16), np.log(8192)))) for _ in range(2))
        for name in design_names():
            design = load_design(name)
            try:
                base = simulate_gemm(spec_for(design, m, n, k), design)
            except MixpeError:
                continue
            errors.append(abs(base.plan.tiling.estimated_time_s / base.device_time_s - 1))
            for what, bigger in _more(design).items():
                spec = spec_for(bigger, m, n, k)
                ratio = simulate_gemm(spec, bigger).device_time_s / base.device_time_s
                cases += 1
                if ratio > 1 + ROUNDING:
                    # the smaller design's plan, laid out on the same tiles of the larger one
                    same = plan_time_ns(lay_out(spec, bigger, base.plan.tiling), bigger) * 1e-9
                    inversions[what]["fcfs" if same > base.device_time_s * (1 + ROUNDING) else "choice"] += 1
                if ratio > worst.get(what, (0.0,))[0]:
                    worst[what] = (ratio, name, m, n, k)
    wall = time.perf_counter() - t0
    rate = (rate + simpy_rate()) / 2
    e = np.array(errors)
    print(f"{cases} cases, {wall:.0f} s wall, {reference_seconds(wall, rate):.0f} reference s")
    print(f"estimate error of the chosen tiling: median {np.median(e):.1%}, 90th percentile {np.quantile(e, 0.9):.1%}, "
          f"max {e.max():.1%}")
    for what, (ratio, name, m, n, k) in worst.items():
        inv = inversions[what]
        print(f"twice the {what:<5}: worst time ratio {ratio:.4f} ({name}, {m} x {n} x {k}); "
              f"{inv['fcfs'] + inv['choice']} inversions ({inv['fcfs']} FCFS queueing, {inv['choice']} the mapper's choice)")


if __name__ == "__main__":
    main()
