"""Speed of the simulator at GPU scale, in wall and reference seconds (see ``refsec.py``).

Cases (each timed after measuring this machine's bare SimPy rate in the same process):

``model``
    A model run (:func:`mixpe_sys.sim.model.simulate_model`, full workload) cold (an empty
    temporary op-cost store, ``MIXPE_SIM_CACHE_DIR``) and warm (the same store again), for the
    model and for its 2-layer variant: the 2-layer variant has the same distinct ops, so a run
    whose cost follows distinct work costs about the same for both.
``replay``
    A serving replay of an Azure 2023 trace (Llama-2-7B, ``mixpe-w4a8``, exact costs by default)
    cold and warm, as :mod:`bench_replay` runs it.
``des``
    The raw discrete-event simulation of one large GEMM (tile steps per second) against a bare
    SimPy model of the same step pattern (a DMA load through a shared channel, then compute on
    the tile's array, double-buffered, every tile at once), both measured here.

Usage::

    python benchmarks/bench_speed.py model --model llama-2-7b --design mixpe-w4a8 --batch 1
    python benchmarks/bench_speed.py model --model llama-2-70b --design h100-like --batch 16 --quant W4A16
    python benchmarks/bench_speed.py replay [--limit N] [--workers 2]
    python benchmarks/bench_speed.py des [--m 8192 --n 8192 --k 8192]

Targets (reference seconds, cold): Llama-2-7B b1 p2048 g256 ``mixpe-w4a8`` <= 1; Llama-2-70B b16 p2048
g256 ``h100-like`` <= 20; the whole Azure code trace <= 30 cold, <= 5 warm; the DES at >= 80 % of the
bare SimPy step rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refsec import reference_seconds, simpy_rate  # noqa: E402

from mixpe_sys import load_design  # noqa: E402
from mixpe_sys.sim.cost_store import CACHE_DIR_ENV  # noqa: E402
from mixpe_sys.workload.models import load_model  # noqa: E402

TRACES = Path(__file__).resolve().parent.parent / "traces" / "azure-llm-2023"


def timed(label: str, work) -> tuple[float, object]:
    """Run ``work()``; print its wall and reference seconds; return (reference s, result)."""
    rate = simpy_rate()
    cpu, kids = time.process_time(), _children_cpu_s()
    start = time.perf_counter()
    result = work()
    wall = time.perf_counter() - start
    cpu, kids = time.process_time() - cpu, _children_cpu_s() - kids
    ref = reference_seconds(wall, rate)
    print(f"{label:<58} wall {wall:8.2f} s  SimPy {rate / 1e6:5.2f} M/s  {ref:8.2f} reference s  "
          f"(CPU s: this process {cpu:.2f}, finished workers {kids:.2f}; load {os.getloadavg()[0]:.1f})", flush=True)
    return ref, result


def _children_cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def rss_mb() -> str:
    """Peak resident memory of this process and of its finished children (MB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return f"peak RSS {own:.0f} MB (largest worker {kids:.0f} MB)"


def bench_model(args) -> None:
    """Cold then warm, for the model and its 2-layer variant, each run in a fresh process (no in-process
    memo carries over from one run to the next)."""
    refs = {}
    for layers in (0, 2):
        with tempfile.TemporaryDirectory() as store:
            for state in ("cold", "warm"):
                cmd = [sys.executable, __file__, "model-once", "--layers", str(layers), "--state", state,
                       *(f"--{k}={v}" for k, v in vars(args).items() if k not in ("func", "case") and v is not None)]
                out = subprocess.run(cmd, env={**os.environ, CACHE_DIR_ENV: store}, check=True,
                                     capture_output=True, text=True).stdout
                print(out, end="", flush=True)
                refs[layers, state] = float(out.split("reference s")[0].split()[-1])
    for state in ("cold", "warm"):
        print(f"{state}: {args.model} costs {refs[0, state] / refs[2, state]:.2f}x its 2-layer variant "
              f"(reference s)")


def bench_model_once(args) -> None:
    from mixpe_sys.hw.precision import run_quant
    from mixpe_sys.sim.model import simulate_model

    design = load_design(args.design)
    quant = run_quant(design, args.quant or None)
    spec = load_model(args.model)
    if args.layers:
        spec = dataclasses.replace(spec, name=f"{spec.name}[{args.layers} layers]", num_layers=args.layers)
    kw = dict(batch=args.batch, prompt=args.prompt, generate=args.generate, quant=quant, workers=args.workers,
              progress=False)
    _, result = timed(f"{spec.name} b{args.batch} p{args.prompt} g{args.generate} {design.name} {args.state} "
                      f"({args.workers} worker(s))", lambda: simulate_model(spec, design, **kw).to_dict())
    print(f"  {result['ops']} ops, {result['distinct_ops']} distinct, {result['simulated_ops']} simulated, "
          f"total {result['total_time_s']:.6g} s simulated; {rss_mb()}", flush=True)


def bench_replay(args) -> None:
    from mixpe_sys.serving import ServingConfig, ServingSimulator
    from mixpe_sys.sim.engine import CostCache
    from mixpe_sys.workload.requests import load_request_trace

    model, design = load_model(args.model), load_design(args.design)
    requests = load_request_trace(TRACES / f"AzureLLMInferenceTrace_{args.trace}.csv", limit=args.limit)
    config = ServingConfig(cost_model=args.cost_model)

    def replay():
        with CostCache(design, workers=args.workers) as cache:
            return ServingSimulator(requests, model, design, config, quant=design.native_quant, cache=cache,
                                    progress=False).run().summary

    with tempfile.TemporaryDirectory() as store:
        os.environ[CACHE_DIR_ENV] = store
        for state in ("cold", "warm"):
            _, summary = timed(f"{args.trace} trace, {len(requests)} requests, {args.cost_model}, {state} "
                               f"({args.workers} worker(s))", replay)
            print(f"  {summary['simulated_ops']} ops simulated, {summary['iterations']} iterations, "
                  f"throughput {summary['throughput_tokens_per_s']:.6g} tokens/s", flush=True)
    print(rss_mb())


def bare_steps_per_s(tiles: int, steps: int, channels: int) -> float:
    """Tile steps per second of a bare SimPy DMA+compute pattern: per tile a loader (a DMA channel
    request, the load's timeout, the release, a put into a two-slot buffer) and a compute process (a
    get from the buffer, the compute timeout)."""
    env = simpy.Environment()
    dma = simpy.Resource(env, capacity=channels)

    def loader(buf):
        for _ in range(steps):
            with dma.request() as req:
                yield req
                yield env.timeout(3)
            yield buf.put(1)

    def compute(buf):
        for _ in range(steps):
            yield buf.get()
            yield env.timeout(4)

    for _ in range(tiles):
        buf = simpy.Store(env, capacity=2)
        env.process(loader(buf))
        env.process(compute(buf))
    start = time.perf_counter()
    env.run()
    return tiles * steps / (time.perf_counter() - start)


def bench_des(args) -> None:
    from mixpe_sys.hw.accelerator import Accelerator
    from mixpe_sys.mapping.gemm import GemmSpec, plan_gemm
    from mixpe_sys.metrics.recorder import Recorder

    design = load_design(args.design)
    q = design.native_quant
    spec = GemmSpec(m=args.m, n=args.n, k=args.k, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, output_bits=16,
                    group_size=q.group_size if q.quantized_weights else 0, scale_bits=q.scale_bits,
                    zero_bits=q.zero_bits)
    plan = plan_gemm(spec, design)
    steps = sum(len(s) for s in plan.steps)
    rate = simpy_rate()
    per_tile = max(1, steps // design.num_tiles)
    bare_before = bare_steps_per_s(design.num_tiles, per_tile, design.dram.channels)
    env = simpy.Environment()
    accel = Accelerator(env, design, Recorder(steps=False))
    start = time.perf_counter()
    env.run(until=accel.start_gemm(0, plan))
    wall = time.perf_counter() - start
    des = steps / wall
    # the bare pattern just before and just after, so that a change of load shows as two different rates
    bare_after = bare_steps_per_s(design.num_tiles, per_tile, design.dram.channels)
    bare = (bare_before + bare_after) / 2
    print(f"bare SimPy DMA+compute pattern: {bare_before:,.0f} steps/s before, {bare_after:,.0f} after")
    print(f"GEMM {args.m} x {args.n} x {args.k} on {design.name}: {steps} tile steps in {wall:.2f} s wall "
          f"({reference_seconds(wall, rate):.2f} reference s), SimPy {rate / 1e6:.2f} M timeouts/s")
    print(f"DES {des:,.0f} tile steps/s; bare SimPy DMA+compute pattern {bare:,.0f} steps/s; "
          f"DES / bare = {des / bare:.0%}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="case", required=True)
    p = sub.add_parser("model")
    p.add_argument("--model", default="llama-2-7b")
    p.add_argument("--design", default="mixpe-w4a8")
    p.add_argument("--quant")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt", type=int, default=2048)
    p.add_argument("--generate", type=int, default=256)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=bench_model)
    p = sub.add_parser("model-once", help="one timed model run (what `model` runs in each fresh process)")
    for name, default in (("model", None), ("design", None), ("quant", None)):
        p.add_argument(f"--{name}", default=default)
    for name in ("batch", "prompt", "generate", "workers", "layers"):
        p.add_argument(f"--{name}", type=int, default=0)
    p.add_argument("--state", default="cold")
    p.set_defaults(func=bench_model_once)
    p = sub.add_parser("replay")
    p.add_argument("--trace", choices=["code", "conv"], default="code")
    p.add_argument("--model", default="llama-2-7b")
    p.add_argument("--design", default="mixpe-w4a8")
    p.add_argument("--cost-model", choices=["exact", "interpolated"], default="exact")
    p.add_argument("--limit", type=int, help="only the first N requests")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=bench_replay)
    p = sub.add_parser("des")
    p.add_argument("--design", default="mixpe-w4a8")
    p.add_argument("--m", type=int, default=8192)
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--k", type=int, default=8192)
    p.set_defaults(func=bench_des)
    args = ap.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
