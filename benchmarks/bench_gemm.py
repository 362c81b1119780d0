"""Speed of the raw discrete-event simulation for large GEMMs, with and without the fast-forward.

Runs the mapped GEMM on a fresh accelerator (as ``mixpe_sys.sim.plan_run.run_plan``
does) in a SimPy environment that counts the events it processes, once simulating
every step and once with the steady-state fast-forward (``mixpe_sys.hw.steady_state``),
checks that both give the same time and unit busy times, and prints for each the
wall time, the reference seconds (``refsec.py``: the wall time scaled by bare SimPy's
speed measured in this process just before), events, tile steps, steps skipped and
simulated time.

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

from refsec import reference_seconds, simpy_rate

DEFAULT_CASES = [("mixpe-w4a8", 2048, 11008, 4096), ("mixpe-w4a8", 4096, 4096, 4096),
                 ("a100-like", 2048, 11008, 4096), ("a100-like", 4096, 4096, 4096),
                 ("h100-like", 2048, 11008, 4096), ("h100-like", 4096, 4096, 4096),
                 ("paper-mixpe-w4a8", 2048, 11008, 4096), ("paper-mixpe-w4a8", 4096, 4096, 4096),
                 ("paper-fp16", 4096, 4096, 4096)]


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


def simulate(design, plan, fast_forward: bool) -> dict:
    """One run of ``plan``: wall s, reference s, events, skipped steps, simulated ns, unit busy times."""
    rate = simpy_rate()
    env = CountingEnvironment()
    accel = Accelerator(env, design, Recorder(steps=False))
    start = time.perf_counter()
    env.run(until=accel.start_gemm(0, plan, fast_forward))
    wall = time.perf_counter() - start
    watch = accel.steady_state
    return {"sim_s": wall, "ref_s": reference_seconds(wall, rate), "events": env.events_processed,
            "skipped": watch.skipped_steps if watch is not None else 0, "now_ns": env.now,
            "busy": accel.recorder.busy_ns()}


def bench(design_name: str, m: int, n: int, k: int) -> dict:
    """Map and simulate one GEMM with and without the fast-forward; return the figures."""
    design = load_design(design_name)
    spec = gemm_spec(design, m, n, k)
    t0 = time.perf_counter()
    plan = plan_gemm(spec, design)
    map_s = time.perf_counter() - t0
    full, fast = simulate(design, plan, False), simulate(design, plan, True)
    if (full["now_ns"], full["busy"]) != (fast["now_ns"], fast["busy"]):
        raise SystemExit(f"{design_name} {m}x{n}x{k}: the fast-forward changed a figure")
    return {"design": design_name, "gemm": f"M={m} N={n} K={k}", "map_s": map_s, "full": full, "fast": fast,
            "tile_steps": sum(len(s) for s in plan.steps), "simulated_us": full["now_ns"] / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", help="design preset (default: the default cases)")
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--k", type=int, default=4096)
    args = parser.parse_args()
    cases = [(args.design, args.m, args.n, args.k)] if args.design else DEFAULT_CASES
    print(f"{'design':<17} {'gemm':<22} {'steps':>7} {'full s':>7} {'full ref s':>10} {'ff s':>7} "
          f"{'ff ref s':>8} {'speed-up':>8} {'skipped':>8} {'events':>8} {'ff events':>9} {'simulated us':>12}")
    for case in cases:
        r = bench(*case)
        full, fast = r["full"], r["fast"]
        print(f"{r['design']:<17} {r['gemm']:<22} {r['tile_steps']:7d} {full['sim_s']:7.2f} {full['ref_s']:10.2f} "
              f"{fast['sim_s']:7.2f} {fast['ref_s']:8.2f} {full['ref_s'] / fast['ref_s']:8.2f} "
              f"{fast['skipped']:8d} {full['events']:8d} {fast['events']:9d} {r['simulated_us']:12.1f}", flush=True)


if __name__ == "__main__":
    main()
