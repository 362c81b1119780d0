"""Serving the Azure LLM inference traces: TTFT and TPOT percentiles of each design.

Usage::

    python experiments/serving_azure.py OUTDIR [--limit N] [--designs A,B,...] [--model NAME] [--rate-scale X]

Replays the first ``--limit`` requests (default 40) of the Azure 2023 code and
conversation traces on Llama-3-8B (its 8,192-token context holds every one of
those requests; Llama-2-7B's 4,096 would reject the longest, as vLLM does, and
the replay counts them in ``rejected_requests``) (Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0, see
``traces/azure-llm-2023/README.md``) on each design with continuous batching
(max batch 32, 4,096 batched tokens), and writes ``serving.csv`` (one row per
trace and design), ``summary.md`` and ``serving.png`` (TTFT and TPOT p50/p99
bars). Every replay of a design shares one exact op-cost cache, whose new ops
are simulated on one worker process per CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mixpe_sys.plotting import pyplot_or_exit

plt = pyplot_or_exit(__file__)
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
import pandas as pd  # noqa: E402

from mixpe_sys import load_design  # noqa: E402
from mixpe_sys.cli import cpu_count  # noqa: E402
from mixpe_sys.errors import MixpeError  # noqa: E402
from mixpe_sys.report import markdown_table  # noqa: E402
from mixpe_sys.serving import replay  # noqa: E402
from mixpe_sys.sim.engine import CostCache  # noqa: E402
from mixpe_sys.workload.models import load_model  # noqa: E402
from mixpe_sys.workload.requests import load_request_trace  # noqa: E402

TRACES = Path(__file__).resolve().parent.parent / "traces" / "azure-llm-2023"
FILES = {"code": TRACES / "AzureLLMInferenceTrace_code.csv", "conv": TRACES / "AzureLLMInferenceTrace_conv.csv"}
DESIGNS = ["mixpe-w4a8", "qserve-w4a8", "int8", "fp16"]
FIGURES = ["throughput_tokens_per_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s",
           "e2e_p99_s", "energy_per_token_j", "preemptions", "completed", "rejected_requests"]
MODEL = "llama-3-8b"


def run(designs: list[str], model_name: str, limit: int, rate_scale: float) -> pd.DataFrame:
    """One row per (trace, design) with the replay's summary figures."""
    model = load_model(model_name)
    traces = {name: load_request_trace(path, limit=limit, rate_scale=rate_scale) for name, path in FILES.items()}
    rows = []
    for name in designs:
        design = load_design(name)
        with CostCache(design, workers=cpu_count()) as cache:
            rows += [replay_row(trace, requests, model, design, name, cache) for trace, requests in traces.items()]
    return pd.DataFrame(rows)


def replay_row(trace: str, requests: pd.DataFrame, model, design, name: str, cache: CostCache) -> dict:
    """The summary figures of one replay (NaN and the reason when the design cannot serve the trace)."""
    start = time.perf_counter()
    try:
        s = replay(requests, model, design, cache=cache, progress=False).summary
        figures, status = {k: s[k] for k in FIGURES}, "ok"
    except MixpeError as exc:  # e.g. FP16 weights leave too little DRAM for a long prompt's KV cache
        figures, status = {k: float("nan") for k in FIGURES}, str(exc)
    return {"trace": trace, "design": name, "requests": len(requests), **figures, "status": status,
            "wall_s": time.perf_counter() - start}


def plot(df: pd.DataFrame, path: Path, model: str) -> None:
    """TTFT and TPOT medians and 99th percentiles per design (log time axis, points not bars), one row per
    trace; a design that could not serve a trace is named in its panel."""
    designs = list(dict.fromkeys(df["design"]))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), squeeze=False)
    for row, trace in enumerate(FILES):
        sel = df[df["trace"] == trace].set_index("design")
        served = [d for d in designs if d in sel.index and sel.loc[d, "status"] == "ok"]
        missing = [d for d in designs if d not in served]
        n = int(sel["requests"].iloc[0]) if len(sel) else 0
        for col, (metric, words) in enumerate((("ttft", "time to first token"), ("tpot", "time per output token"))):
            ax = axes[row][col]
            x = range(len(served))
            ax.scatter(x, [sel.loc[d, f"{metric}_p50_s"] for d in served], marker="o", s=40, label="median (p50)")
            ax.scatter(x, [sel.loc[d, f"{metric}_p99_s"] for d in served], marker="^", s=40,
                       label="99th percentile (p99)")
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.margins(y=0.15)
            ax.set_xticks(list(x), served, rotation=20)
            ax.set_xlim(-0.5, max(len(served), 1) - 0.5)
            ax.set_ylabel(f"{words} (s, log scale)")
            ax.set_title(f"{trace} trace, first {n} requests: {metric.upper()}")
            ax.grid(True, axis="y", which="both", alpha=0.3)
            if missing:
                ax.text(0.02, 0.02, "could not serve: " + ", ".join(missing), transform=ax.transAxes, fontsize=8,
                        color="darkred")
            if row == 0 and col == 0:
                ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Serving the Azure LLM inference traces (2023) with {model}, continuous batching")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir")
    p.add_argument("--limit", type=int, default=40, help="first N requests of each trace (default 40)")
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument("--model", default=MODEL, help=f"model (default {MODEL})")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply the arrival rate")
    args = p.parse_args(argv)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    df = run(args.designs.split(","), args.model, args.limit, args.rate_scale)
    df.to_csv(out / "serving.csv", index=False)
    plot(df, out / "serving.png", args.model)
    md = ["# Serving the Azure LLM inference traces", "",
          f"{args.model}, first {args.limit} requests of each trace, rate x{args.rate_scale}, continuous batching "
          f"(max batch 32, 4,096 batched tokens). Run time {time.perf_counter() - start:.0f} s.", "",
          "Trace data: Azure LLM inference trace 2023 (Patel et al., Splitwise, ISCA 2024), CC-BY 4.0.", "",
          markdown_table(df.drop(columns=["wall_s"])), ""]
    (out / "summary.md").write_text("\n".join(md))
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
