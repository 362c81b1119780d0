"""Speed of the mapper's tiling search alone, in wall and reference seconds (see ``refsec.py``).

Chooses the tiling (:func:`mixpe_sys.mapping.tiling.choose_tiling`: candidates, estimates,
the shortlist laid out and simulated) of the Llama-2-7B and Llama-2-70B linear-layer GEMMs,
decode (M = 1, 16) and prefill (M = 2048), on a few designs, each at its own quantization,
with every memo of the package cleared first (a cold search). Prints, per design and in
all, the wall time and the reference seconds (the wall time scaled by bare SimPy's speed
measured in this process just before).

Usage::

    python benchmarks/bench_mapping.py
    python benchmarks/bench_mapping.py --design mixpe-w4a8 --design fp16 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refsec import reference_seconds, simpy_rate  # noqa: E402

from mixpe_sys import load_design  # noqa: E402
from mixpe_sys.hw.precision import run_quant  # noqa: E402
from mixpe_sys.mapping.tiling import choose_tiling  # noqa: E402
from mixpe_sys.workload.gemm_spec import GemmSpec  # noqa: E402

#: (N, K) of the linear layers: Llama-2-7B q/k/v/o, gate/up, down; Llama-2-70B q/o, k/v, gate/up, down
LAYERS = [(4096, 4096), (11008, 4096), (4096, 11008), (8192, 8192), (1024, 8192), (28672, 8192), (8192, 28672)]
#: activation rows: decode at batch 1 and 16, a 2048-token prefill
ROWS = [1, 16, 2048]
DESIGNS = ["mixpe-w4a8", "fp16", "a100-like", "h100-like"]


def gemm_spec(design, m: int, n: int, k: int) -> GemmSpec:
    """The GEMM at the design's own quantization (as ``mixpe_sys.simulate_gemm`` builds it)."""
    q = run_quant(design)
    return GemmSpec(m=m, n=n, k=k, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    activation_format=q.activation_format, output_bits=q.activation_bits,
                    group_size=q.group_size if q.quantized_weights else 0, scale_bits=q.scale_bits,
                    zero_bits=q.zero_bits)


def clear_memos() -> int:
    """Clear every ``functools`` memo of the loaded ``mixpe_sys`` modules; return how many."""
    cleared = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("mixpe_sys") or module is None:
            continue
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                value.cache_clear()
                cleared += 1
    return cleared


def search(designs: list) -> float:
    """Wall seconds of choosing the tiling of every shape on every one of ``designs`` (clear the memos first)."""
    specs = [(d, gemm_spec(d, m, n, k)) for d in designs for m in ROWS for n, k in LAYERS]
    start = time.perf_counter()
    for design, spec in specs:
        choose_tiling(spec, design)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", action="append", help="design preset (repeatable; default: four designs)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of the whole search (best kept)")
    args = parser.parse_args()
    names = args.design or DESIGNS
    designs = [load_design(name) for name in names]
    shapes = len(ROWS) * len(LAYERS)
    total_wall = total_ref = 0.0
    print(f"{'design':<14} {'GEMMs':>5} {'wall s':>8} {'reference s':>11}")
    for name, design in zip(names, designs):
        best_wall, best_ref = float("inf"), float("inf")
        for _ in range(args.repeat):
            clear_memos()  # (before the rate too: a large heap slows SimPy down as well)
            gc.collect()
            rate = simpy_rate()
            wall = search([design])
            if wall < best_wall:
                best_wall, best_ref = wall, reference_seconds(wall, rate)
        total_wall += best_wall
        total_ref += best_ref
        print(f"{name:<14} {shapes:5d} {best_wall:8.2f} {best_ref:11.2f}", flush=True)
    print(f"{'all':<14} {shapes * len(names):5d} {total_wall:8.2f} {total_ref:11.2f}")


if __name__ == "__main__":
    main()
