"""``mixpe-sim run --system/--tp/--pp``: a model run on one replica of a system of chips."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MixpeError
from .common import cpu_count, print_table
from .system_args import resolve_system


def _write(result, outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("chips", result.chips), ("collectives", result.collectives), ("passes", result.passes),
                     ("ops", result.ops)):
        tmp = out / f".{name}.csv.tmp"
        df.to_csv(tmp, index=False)
        tmp.replace(out / f"{name}.csv")
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(result.to_dict()) + "\n", encoding="utf-8")
    tmp.replace(out / "summary.json")


def run_system(args, design, quant=None) -> int:
    """Simulate ``--model`` on the system of the options with ``quant`` (None: the chip design's); print the
    figures."""
    from ..hw.precision import run_quant
    from ..system import simulate_system
    from ..workload.models import load_model

    if args.trace:
        raise MixpeError("--trace replays a one-chip operator trace; drop it to run --model on a system")
    if args.workload != "full":
        raise MixpeError("a system runs the full workload (prefill and decode); drop --workload paper")
    system = resolve_system(args, design)
    result = simulate_system(load_model(args.model), system, batch=args.batch, prompt=args.prompt,
                             generate=args.generate, quant=run_quant(system.chip, quant), reuse=not args.no_reuse,
                             workers=args.workers or cpu_count(),
                             cache_dir=False if args.no_cache else None, fast_forward=not args.no_fast_forward)
    if args.out:
        _write(result, args.out)
    d = result.to_dict()
    if args.json:
        print(json.dumps(d))
        return 0
    print(f"{d['model']} on {system.describe()}")
    print(f"  batch {d['batch']}, prompt {d['prompt_tokens']}, generate {d['generate_tokens']}, "
          f"{d['microbatches']} micro-batch(es)")
    tpot = d["time_per_output_token_s"]
    print_table([
        ("prefill", f"{d['prefill_time_s'] * 1e3:.3f} ms"),
        ("decode", f"{d['decode_time_s'] * 1e3:.3f} ms"),
        ("total", f"{d['total_time_s'] * 1e3:.3f} ms"),
        ("time per output token", "-" if tpot is None else f"{tpot * 1e3:.3f} ms"),
        ("tokens/s", f"{d['tokens_per_s']:.2f}"),
        ("collectives (per chip, at most)", f"{d['collective_time_s'] * 1e3:.3f} ms"),
        ("collective bytes (all chips)", f"{d['collective_bytes'] / 1e9:.4f} GB"),
        ("memory per chip (of DRAM)", f"{d['memory_per_chip_bytes'] / 1e9:.2f} GB of "
                                      f"{d['dram_capacity_bytes'] / 1e9:.2f} GB"),
        ("collectives", "simulated on the shared links" if d["live_collectives"] else
                        "timed alone and reused (no link is shared)"),
    ])
    print("  per chip:")
    cols = ["chip", "stage", "tp_rank", "compute_s", "collective_s", "idle_s", "memory_bytes"]
    print("    " + result.chips[cols].to_string(index=False).replace("\n", "\n    "))
    return 0
