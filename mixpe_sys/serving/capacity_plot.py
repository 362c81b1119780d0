"""Latency-vs-load curve of a capacity search: the CSV, the plot and the JSON figures."""

from __future__ import annotations

import json
from pathlib import Path

from .capacity import CapacityResult


def plot_capacity(result: CapacityResult, path: str | Path, *, title: str = "Latency vs load") -> Path:
    """Plot p50/p99 TTFT and TPOT against the offered rate, with the SLOs and the answer; write ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result.curve
    by_rate = bool(c["offered_requests_per_s"].notna().all())
    rate = c["offered_requests_per_s"] if by_rate else c["rate_scale"]
    xlabel = "offered load (requests/s)" if by_rate else "arrival-rate scale (x trace)"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, name, slo, unit, factor in ((axes[0], "ttft", result.slo_ttft_p99_s, "s", 1.0),
                                        (axes[1], "tpot", result.slo_tpot_p99_s, "ms", 1e3)):
        ax.plot(rate, c[f"{name}_p99_s"] * factor, "o-", label="p99")
        ax.plot(rate, c[f"{name}_p50_s"] * factor, "s--", label="p50", alpha=0.7)
        ax.axhline(slo * factor, color="red", linestyle=":", label=f"SLO p99 {slo * factor:g} {unit}")
        if result.max_rate_scale > 0:
            x = result.max_requests_per_s if by_rate else result.max_rate_scale
            ax.axvline(x, color="green", linestyle="-.", label="largest rate meeting both SLOs")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{name.upper()} ({unit})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_capacity(result: CapacityResult, outdir: str | Path, *, title: str = "Latency vs load") -> list[Path]:
    """Write ``capacity.csv`` (every probe), ``capacity.png`` and ``capacity.json`` into ``outdir``.

    Each file is written under a temporary name and renamed, so it is complete or absent.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, write in (("capacity.csv", lambda p: result.curve.to_csv(p, index=False)),
                        ("capacity.json", lambda p: p.write_text(json.dumps(result.to_dict()) + "\n",
                                                                 encoding="utf-8")),
                        ("capacity.png", lambda p: plot_capacity(result, p, title=title))):
        tmp = outdir / f".{name}.tmp{Path(name).suffix}"
        write(tmp)
        tmp.replace(outdir / name)
        out.append(outdir / name)
    return out
