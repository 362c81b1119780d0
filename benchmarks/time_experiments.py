"""Run time of every experiment, in wall seconds and reference seconds (see ``refsec.py``).

Runs each script of ``experiments/`` with its default settings, one after another, in a fresh process
writing into ``OUTDIR/NAME``, and prints a Markdown table: wall seconds, CPU seconds of the script and
its worker processes, the bare SimPy rate measured just before and just after, and the wall time in
reference seconds at the mean of the two rates. ``experiments/README.md`` quotes its output.

    python benchmarks/time_experiments.py OUTDIR [NAME ...]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

from refsec import reference_seconds, simpy_rate

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ("dse_pareto", "paper_speedup_energy", "prefill_vs_decode", "serving_azure", "validate_gpu")


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    out, names = Path(argv[0]), argv[1:] or list(EXPERIMENTS)
    rows = ["| experiment | wall s | CPU s | SimPy rate before / after (timeouts/s) | reference s |",
            "|---|---|---|---|---|"]
    for name in names:
        before, cpu = simpy_rate(), cpu_children()
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(ROOT / "experiments" / f"{name}.py"), str(out / name)])
        wall, cpu = time.perf_counter() - start, cpu_children() - cpu
        after = simpy_rate()
        if code:
            print(f"{name} failed with exit code {code}", file=sys.stderr)
            return code
        rows.append(f"| {name}.py | {wall:.0f} | {cpu:.0f} | {before:.3g} / {after:.3g} | "
                    f"{reference_seconds(wall, (before + after) / 2):.0f} |")
        print(rows[-1], file=sys.stderr)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
