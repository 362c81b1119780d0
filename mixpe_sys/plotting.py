"""Matplotlib for the plots of the experiments and :func:`mixpe_sys.dse.plot_pareto`, or a one-line hint.

Matplotlib is an optional dependency (``pip install 'mixpe_sys[plot]'``; the
``test`` and ``dse`` extras include it): the simulator runs without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import MixpeError

HINT = "plots need matplotlib, which the base install leaves out: pip install 'mixpe_sys[plot]' (or -e '.[plot]')"


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend.

    Raises
    ------
    MixpeError
        When matplotlib is not installed (the message says how to install it).
    """
    try:
        import matplotlib
    except ImportError:
        raise MixpeError(HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pyplot_or_exit(script: str):
    """:func:`pyplot` for a script: without matplotlib, print the hint as one line and exit with code 2."""
    try:
        return pyplot()
    except MixpeError as exc:
        print(f"{Path(script).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
