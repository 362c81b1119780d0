"""Measure kernel times on an NVIDIA GPU (written for an H200) with CUDA events, for validating h200-like.

Usage (on the GPU machine, with PyTorch installed; imports nothing from mixpe_sys)::

    python experiments/measure_h200.py OUTDIR [--budget-s 270] [--quick]

Every time is measured on the device with CUDA events after warm-up, except the
``host_sync`` launch rows, which time the host wall clock around one call and a
synchronize (the way LLMCompass's A100 GEMM set was measured). Writes into OUTDIR,
each CSV starting with ``# key: value`` lines saying what was measured and how
(readable by ``mixpe_sys.measurements.read_measurements``):

- ``gemm.csv``: FP16 and BF16 ``torch.matmul`` of ``[M, K] x [K, N]`` for the Llama-2-7B
  projections (N x K = 12288 x 4096 fused QKV, 4096 x 4096 output projection, 22016 x 4096
  fused gate + up, 4096 x 11008 down) at M = 1 ... 4096. Several copies of the weights (together
  more than 3 x the L2) are used in turn so every call reads its weights from HBM, as in a
  model where each layer's weights evict the previous layer's. ``eager_us``: events around R
  back-to-back launches from Python, divided by R; ``graph_us``: the same R calls captured in
  one CUDA graph and replayed, divided by R (kernel time + the graph's gap between kernels).
- ``launch.csv``: a one-element in-place add: ``graph_us`` per kernel in a replayed graph,
  ``eager_us`` per kernel launched back to back, ``host_sync_us`` the host-timed median of
  one launch + ``torch.cuda.synchronize()``; and the same host timing of a 64 x 64 matmul.
- ``copy.csv``: device-to-device copies (``dst.copy_(src)``), bytes read + written over time.
- ``sdpa.csv``: ``torch.nn.functional.scaled_dot_product_attention`` (FP16, 32 heads of 128,
  Llama-2-7B): causal prefill of S tokens, and decode (1 query) against KV lengths L at batch B.
- ``int4_gemm.csv``: weight-only INT4 GEMMs (``torch._weight_int4pack_mm``, groups of 128,
  BF16 activations) when the installed PyTorch has them; otherwise the file says why not.
- ``env.json``: GPU, driver, PyTorch and CUDA versions, SM count, L2 size, and the SM clock
  and power read with ``nvidia-smi`` before and after.

The whole run stays within ``--budget-s`` (default 270 s): sections that would start after
the budget is spent are skipped and say so in ``env.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Llama-2-7B projections as (name, N, K).
SHAPES = (("qkv", 12288, 4096), ("o_proj", 4096, 4096), ("gate_up", 22016, 4096), ("down", 4096, 11008))
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
QUICK_BATCHES = (1, 16, 128, 1024)
WARMUP = 5
TARGET_MS = 5.0  # each timed loop runs about this long
MAX_REPS = 200


def _header(path: Path, lines: dict[str, str], columns: list[str]):
    fh = path.open("w", newline="", encoding="utf-8")
    for key, value in lines.items():
        fh.write(f"# {key}: {value}\n")
    writer = csv.writer(fh)
    writer.writerow(columns)
    return fh, writer


def _nvidia_smi() -> dict:
    query = "name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(zip(query.split(","), (v.strip() for v in out[0].split(",")))) if out else {}


class Timer:
    """CUDA-event timing of a callable: eager back-to-back launches and CUDA-graph replay."""

    def __init__(self, torch):
        self.torch = torch

    def reps_for(self, fn) -> int:
        torch = self.torch
        for _ in range(WARMUP):
            fn(0)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(1)
        end.record()
        end.synchronize()
        one_ms = max(start.elapsed_time(end), 1e-3)
        return max(1, min(MAX_REPS, int(TARGET_MS / one_ms)))

    def eager_us(self, fn, reps: int) -> float:
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for i in range(reps):
            fn(i)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e3 / reps

    def graph_us(self, fn, reps: int) -> float:
        torch = self.torch
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up on the side stream, as graph capture requires
            for i in range(WARMUP):
                fn(i)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(reps):
                fn(i)
        graph.replay()  # first replay uploads the graph
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = math.inf
        for _ in range(3):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) * 1e3 / reps)
        del graph
        return best

    def host_sync_us(self, fn, reps: int = 200) -> float:
        torch = self.torch
        for i in range(WARMUP):
            fn(i)
        torch.cuda.synchronize()
        times = []
        for i in range(reps):
            t0 = time.perf_counter()
            fn(i)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e6


def measure_gemms(torch, timer: Timer, out: Path, batches, l2_bytes: int, deadline: float, gpu: str) -> int:
    fh, w = _header(out / "gemm.csv", {
        "source": f"measured with experiments/measure_h200.py on {gpu}",
        "timing": "cuda_events after warm-up; eager_us = R back-to-back launches / R, graph_us = R calls "
                  "in one CUDA graph replayed / R (best of 3); weights rotated over copies > 3 x L2",
        "op": "torch.matmul(x[M,K], w[K,N])"},
        ["name", "dtype", "m", "n", "k", "copies", "reps", "eager_us", "graph_us", "graph_tflops"])
    rows = 0
    with fh:
        for dtype_name in ("fp16", "bf16"):
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
            for name, n, k in SHAPES:
                wbytes = n * k * 2
                copies = max(1, math.ceil(3 * l2_bytes / wbytes))
                weights = [torch.randn(k, n, device="cuda", dtype=dtype) for _ in range(copies)]
                for m in batches:
                    if time.monotonic() > deadline:
                        return rows
                    x = torch.randn(m, k, device="cuda", dtype=dtype)
                    y = torch.empty(m, n, device="cuda", dtype=dtype)

                    def fn(i, x=x, y=y):
                        torch.matmul(x, weights[i % copies], out=y)

                    reps = timer.reps_for(fn)
                    reps = max(reps, copies)
                    eager = timer.eager_us(fn, reps)
                    graph = timer.graph_us(fn, reps)
                    w.writerow([name, dtype_name, m, n, k, copies, reps, f"{eager:.3f}", f"{graph:.3f}",
                                f"{2 * m * n * k / (graph * 1e-6) / 1e12:.2f}"])
                    rows += 1
                del weights
                torch.cuda.empty_cache()
    return rows


def measure_launch(torch, timer: Timer, out: Path, gpu: str) -> int:
    fh, w = _header(out / "launch.csv", {
        "source": f"measured with experiments/measure_h200.py on {gpu}",
        "timing": "graph_us / eager_us: cuda_events over R kernels; host_sync_us: median host wall clock of "
                  "one call + torch.cuda.synchronize()"},
        ["kernel", "reps", "graph_us", "eager_us", "host_sync_us"])
    with fh:
        x = torch.zeros(1, device="cuda")
        tiny = lambda i: x.add_(1.0)  # noqa: E731 - one-element kernel: the launch alone
        reps = 1000
        w.writerow(["add_1_element", reps, f"{timer.graph_us(tiny, reps):.3f}", f"{timer.eager_us(tiny, reps):.3f}",
                    f"{timer.host_sync_us(tiny):.3f}"])
        a = torch.randn(64, 64, device="cuda", dtype=torch.float16)
        b = torch.randn(64, 64, device="cuda", dtype=torch.float16)
        mm = lambda i: torch.matmul(a, b)  # noqa: E731 - the smallest GEMM, timed as LLMCompass timed theirs
        w.writerow(["matmul_64x64x64_fp16", 200, f"{timer.graph_us(mm, 200):.3f}", f"{timer.eager_us(mm, 200):.3f}",
                    f"{timer.host_sync_us(mm):.3f}"])
    return 2


def measure_copy(torch, timer: Timer, out: Path, gpu: str) -> int:
    fh, w = _header(out / "copy.csv", {
        "source": f"measured with experiments/measure_h200.py on {gpu}",
        "timing": "cuda_events over back-to-back dst.copy_(src); bytes = read + written"},
        ["bytes_copied", "reps", "time_us", "gb_per_s"])
    rows = 0
    with fh:
        for mib in (64, 256, 1024, 4096):
            src = torch.empty(mib * 2**20, dtype=torch.uint8, device="cuda")
            dst = torch.empty_like(src)
            fn = lambda i: dst.copy_(src)  # noqa: E731
            reps = timer.reps_for(fn)
            t = timer.eager_us(fn, max(reps, 3))
            w.writerow([src.numel(), max(reps, 3), f"{t:.3f}", f"{2 * src.numel() / (t * 1e-6) / 1e9:.1f}"])
            rows += 1
            del src, dst
            torch.cuda.empty_cache()
    return rows


def measure_sdpa(torch, timer: Timer, out: Path, deadline: float, gpu: str, quick: bool) -> int:
    import torch.nn.functional as F

    fh, w = _header(out / "sdpa.csv", {
        "source": f"measured with experiments/measure_h200.py on {gpu}",
        "timing": "cuda_events, graph replay per call; fp16, 32 heads x 128 (Llama-2-7B)",
        "op": "torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=prefill)"},
        ["phase", "batch", "q_len", "kv_len", "heads", "head_dim", "graph_us"])
    heads, d = 32, 128
    cases = [("prefill", 1, s, s) for s in ((512, 2048) if quick else (512, 1024, 2048, 4096))]
    cases += [("decode", b, 1, kv) for b in ((1, 32) if quick else (1, 8, 32)) for kv in (512, 2048, 8192)]
    rows = 0
    with fh:
        for phase, b, sq, skv in cases:
            if time.monotonic() > deadline:
                break
            q = torch.randn(b, heads, sq, d, device="cuda", dtype=torch.float16)
            k = torch.randn(b, heads, skv, d, device="cuda", dtype=torch.float16)
            v = torch.randn_like(k)
            fn = lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=phase == "prefill")  # noqa: E731
            reps = timer.reps_for(fn)
            w.writerow([phase, b, sq, skv, heads, d, f"{timer.graph_us(fn, reps):.3f}"])
            rows += 1
    return rows


def _int4_pack(torch, n: int, k: int, group: int):
    """Packed INT4 weights and BF16 scales/zeros for torch._weight_int4pack_mm, or raise if unavailable."""
    q = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
    try:  # PyTorch >= 2.5 takes [n, k/2] uint8
        packed = torch._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8), 8)
    except (RuntimeError, TypeError):
        packed = torch._convert_weight_to_int4pack(q, 8)
    scales_zeros = torch.randn(k // group, n, 2, device="cuda", dtype=torch.bfloat16)
    return packed, scales_zeros


def measure_int4(torch, timer: Timer, out: Path, batches, deadline: float, gpu: str) -> int:
    group = 128
    rows = []
    reason = ""
    try:
        for name, n, k in SHAPES:
            packed, sz = _int4_pack(torch, n, k, group)
            for m in batches:
                if m > 512 or time.monotonic() > deadline:
                    continue
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
                fn = lambda i: torch._weight_int4pack_mm(x, packed, group, sz)  # noqa: E731
                reps = timer.reps_for(fn)
                rows.append([name, m, n, k, group, reps, f"{timer.eager_us(fn, reps):.3f}",
                             f"{timer.graph_us(fn, reps):.3f}"])
    except (AttributeError, RuntimeError, TypeError) as exc:
        reason = f"torch._weight_int4pack_mm unavailable or failed: {type(exc).__name__}: {str(exc)[:200]}"
    fh, w = _header(out / "int4_gemm.csv", {
        "source": f"measured with experiments/measure_h200.py on {gpu}",
        "timing": "cuda_events; eager_us and graph_us as in gemm.csv (weights not rotated: 4-bit copies are "
                  "a quarter of the size, see gemm.csv for cold-L2 FP16 times)",
        "op": "torch._weight_int4pack_mm(x_bf16[M,K], int4 weights [K,N], group 128, bf16 scales and zeros)",
        **({"unavailable": reason} if reason else {})},
        ["name", "m", "n", "k", "group_size", "reps", "eager_us", "graph_us"])
    with fh:
        w.writerows(rows)
    return len(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--budget-s", type=float, default=270.0, help="stop starting new measurements after this")
    parser.add_argument("--quick", action="store_true", help="a few batch sizes only (about a minute)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("measure_h200: no CUDA device", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    deadline = t0 + args.budget_s
    args.outdir.mkdir(parents=True, exist_ok=True)
    props = torch.cuda.get_device_properties(0)
    l2 = int(getattr(props, "L2_cache_size", 50 * 2**20))
    env = {"gpu": props.name, "sm_count": props.multi_processor_count, "l2_bytes": l2,
           "memory_bytes": props.total_memory, "torch": torch.__version__, "cuda": torch.version.cuda,
           "nvidia_smi_before": _nvidia_smi(), "sections": {}}
    torch.backends.cuda.matmul.allow_tf32 = False
    timer = Timer(torch)
    batches = QUICK_BATCHES if args.quick else BATCHES
    sections = [("launch", lambda: measure_launch(torch, timer, args.outdir, props.name)),
                ("copy", lambda: measure_copy(torch, timer, args.outdir, props.name)),
                ("gemm", lambda: measure_gemms(torch, timer, args.outdir, batches, l2, deadline - 60, props.name)),
                ("sdpa", lambda: measure_sdpa(torch, timer, args.outdir, deadline - 30, props.name, args.quick)),
                ("int4_gemm", lambda: measure_int4(torch, timer, args.outdir, batches, deadline, props.name))]
    for name, run in sections:
        if time.monotonic() > deadline:
            env["sections"][name] = "skipped: budget spent"
            continue
        start = time.monotonic()
        rows = run()
        env["sections"][name] = f"{rows} rows in {time.monotonic() - start:.1f} s"
        print(f"{name}: {env['sections'][name]}", flush=True)
    env["nvidia_smi_after"] = _nvidia_smi()
    env["wall_s"] = time.monotonic() - t0
    (args.outdir / "env.json").write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.outdir} in {env['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
