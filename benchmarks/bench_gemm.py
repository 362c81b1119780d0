"""Speed of the raw discrete-event simulation for large GEMMs.

Runs the mapped GEMM on a fresh accelerator (as ``mixpe_sys.sim.plan_run.run_plan``
does) in a SimPy environment that counts the events it processes, and prints
wall time, events, events per second, tile steps and simulated time.

Usage::

    python benchmarks/bench_gemm.py                   # the default cases
    python benchmarks/bench_gemm.py --m 4096 --n 4096 --k 4096 --design mixpe-w4a16
"""

from __future__ import annotations

import argparse
import time

import simpy

from mixpe_sys import QuantScheme, load_design
from mixpe_sys.hw.accelerator import Accelerator
from mixpe_sys.hw.precision import run_quant
from mixpe_sys.mapping.gemm import GemmSpec, plan_gemm
from mixpe_sys.metrics.recorder import Recorder

DEFAULT_CASES = [("mixpe-w4a8", 8192, 8192, 8192), ("paper-mixpe-w4a8", 2048, 4096, 4096)]


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.events_processed = 0

    def step(self) -> None:
        self.events_processed += 1
        super().step()


def gemm_spec(design, m: int, n: int, k: int) -> GemmSpec:
    """The GEMM at the design's default quantization (as ``mixpe_sys.simulate_gemm`` builds it)."""
    q: QuantScheme = run_quant(design)
    return GemmSpec(m=m, n=n, k=k, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, output_bits=q.activation_bits,
                    group_size=q.group_size if q.quantized_weights else 0, scale_bits=q.scale_bits,
                    zero_bits=q.zero_bits)


def bench(design_name: str, m: int, n: int, k: int) -> dict:
    """Map and simulate one GEMM; return the timing figures."""
    design = load_design(design_name)
    spec = gemm_spec(design, m, n, k)
    t0 = time.perf_counter()
    plan = plan_gemm(spec, design)
    t1 = time.perf_counter()
    env = CountingEnvironment()
    accel = Accelerator(env, design, Recorder())
    env.run(until=accel.start_gemm(0, plan))
    t2 = time.perf_counter()
    sim_wall = t2 - t1
    return {"design": design_name, "gemm": f"M={m} N={n} K={k}", "map_s": t1 - t0, "sim_s": sim_wall,
            "events": env.events_processed, "events_per_s": env.events_processed / sim_wall,
            "tile_steps": sum(len(s) for s in plan.steps), "simulated_us": env.now / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", help="design preset (default: the two default cases)")
    parser.add_argument("--m", type=int, default=8192)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--k", type=int, default=8192)
    args = parser.parse_args()
    cases = [(args.design, args.m, args.n, args.k)] if args.design else DEFAULT_CASES
    print(f"{'design':<18} {'gemm':<22} {'map s':>7} {'sim s':>7} {'events':>9} {'events/s':>10} "
          f"{'steps':>7} {'simulated us':>13}")
    for case in cases:
        r = bench(*case)
        print(f"{r['design']:<18} {r['gemm']:<22} {r['map_s']:7.3f} {r['sim_s']:7.3f} {r['events']:9d} "
              f"{r['events_per_s']:10.0f} {r['tile_steps']:7d} {r['simulated_us']:13.1f}")


if __name__ == "__main__":
    main()
