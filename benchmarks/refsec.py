"""Reference seconds: run times that mean the same on a fast, a slow, an idle or a busy machine.

A wall time divided by this machine's own bare SimPy speed, measured in the
same process just before (and, for long work, just after) the timed work::

    reference seconds = wall_s * rate / 1.63e6

where ``rate`` is the best of three runs of 200,000 bare ``env.timeout(1)``
events (timeouts per second); 1.63e6 timeouts/s is the reference machine.

    python benchmarks/refsec.py                 # prints this machine's rate now
    python benchmarks/refsec.py -- CMD ARGS...  # runs CMD, prints wall s, rates and reference s
"""

from __future__ import annotations

import subprocess
import sys
import time

import simpy

REFERENCE_RATE = 1.63e6
"""Bare SimPy timeouts per second of the reference machine."""


def simpy_rate(n: int = 200_000, repeats: int = 3) -> float:
    """Bare SimPy timeouts per second on this machine now (best of ``repeats`` runs of ``n``)."""
    best = 0.0
    for _ in range(repeats):
        env = simpy.Environment()

        def proc():
            for _ in range(n):
                yield env.timeout(1)

        env.process(proc())
        start = time.perf_counter()
        env.run()
        best = max(best, n / (time.perf_counter() - start))
    return best


def reference_seconds(wall_s: float, rate: float) -> float:
    """``wall_s`` measured at ``rate`` timeouts/s, in seconds of the reference machine."""
    return wall_s * rate / REFERENCE_RATE


def main(argv: list[str]) -> int:
    if not argv:
        print(f"{simpy_rate():.0f}")
        return 0
    command = argv[1:] if argv[0] == "--" else argv
    before = simpy_rate()
    start = time.perf_counter()
    code = subprocess.call(command)
    wall = time.perf_counter() - start
    after = simpy_rate()
    rate = (before + after) / 2
    print(f"wall {wall:.1f} s, SimPy rate {before:.3g} before / {after:.3g} after timeouts/s, "
          f"{reference_seconds(wall, rate):.1f} reference s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
