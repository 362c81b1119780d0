"""Pareto fronts of sweep results, and the fidelity-versus-efficiency plot.

A row is on the front when no other row is at least as good in every
objective and strictly better in one; rows with a missing (NaN) objective are
never on the front and dominate nothing. Identical rows do not dominate each
other, so ties are all kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

PARETO_COLUMN = "pareto"


def _objectives(df: pd.DataFrame, maximize: Sequence[str], minimize: Sequence[str]) -> np.ndarray:
    """``[n, d]`` float matrix in which larger is better in every column."""
    maximize, minimize = list(maximize), list(minimize)
    if not maximize and not minimize:
        raise ValueError("give at least one column to maximize or minimize")
    both = set(maximize) & set(minimize)
    if both:
        raise ValueError(f"columns both maximized and minimized: {sorted(both)}")
    missing = [c for c in maximize + minimize if c not in df.columns]
    if missing:
        raise ValueError(f"no such columns: {missing}")
    cols = [pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64) for c in maximize]
    cols += [-pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64) for c in minimize]
    return np.stack(cols, axis=1) if cols else np.empty((len(df), 0))  # [n, d]


def _front_2d(a: np.ndarray) -> np.ndarray:
    """Non-dominated mask of ``[n, 2]`` finite-or-inf values, maximizing both, O(n log n)."""
    n = len(a)
    order = np.lexsort((-a[:, 1], -a[:, 0]))  # by x descending, then y descending
    x, y = a[order, 0], a[order, 1]
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])  # first row of each run of equal x
    group_max = np.maximum.reduceat(y, starts)  # best y among rows with this x (the run's first)
    # best y over every strictly larger x: running max of the earlier groups' maxima
    before = np.r_[-np.inf, np.maximum.accumulate(group_max)[:-1]]
    sizes = np.diff(np.r_[starts, n])
    first = np.repeat(np.arange(len(starts)) == 0, sizes)  # nothing has a larger x (even if y is -inf)
    keep_sorted = (y == np.repeat(group_max, sizes)) & (first | (y > np.repeat(before, sizes)))
    keep = np.empty(n, dtype=bool)
    keep[order] = keep_sorted
    return keep


def _front_nd(a: np.ndarray) -> np.ndarray:
    """Non-dominated mask of ``[n, d]`` values, maximizing all; O(n x front size), vectorised per front point.

    Each surviving point in turn removes every point it dominates (a point survives a row ``p`` when it beats
    ``p`` somewhere or equals it everywhere), so the candidates shrink quickly.
    """
    n = len(a)
    with np.errstate(invalid="ignore"):  # inf + -inf: such rows are merely tried later
        order = np.argsort(-a.sum(axis=1), kind="stable")  # strong points first prune the most
    cand = order.copy()
    i = 0
    while i < len(cand):
        p = a[cand[i]]
        rest = a[cand]
        survive = (rest > p).any(axis=1) | (rest == p).all(axis=1)
        survive[i] = True
        i = int(survive[:i].sum()) + 1
        cand = cand[survive]
    keep = np.zeros(n, dtype=bool)
    keep[cand] = True
    return keep


def pareto_mask(df: pd.DataFrame, maximize: Sequence[str] = (), minimize: Sequence[str] = ()) -> np.ndarray:
    """Boolean array: which rows of ``df`` are on the Pareto front of the given objectives."""
    a = _objectives(df, maximize, minimize)  # [n, d]
    valid = ~np.isnan(a).any(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    if valid.any():
        sub = a[valid]
        if sub.shape[1] == 1:
            mask[valid] = sub[:, 0] == sub[:, 0].max()
        elif sub.shape[1] == 2:
            mask[valid] = _front_2d(sub)
        else:
            mask[valid] = _front_nd(sub)
    return mask


def pareto(df: pd.DataFrame, maximize: Sequence[str] = (), minimize: Sequence[str] = (), *,
           only_front: bool = False) -> pd.DataFrame:
    """Mark the Pareto-optimal rows of ``df``.

    Parameters
    ----------
    df:
        One row per design point (e.g. :func:`mixpe_sys.dse.read_results`).
    maximize, minimize:
        Objective columns (e.g. ``maximize=["snr_db", "tokens_per_s_per_mm2"]``,
        ``minimize=["energy_per_token_j"]``). Rows with a missing value in any of them are not on the front.
    only_front:
        Return only the front's rows.

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with a boolean ``pareto`` column (or only its ``True`` rows), same index.
    """
    out = df.copy()
    out[PARETO_COLUMN] = pareto_mask(df, maximize, minimize)
    return out[out[PARETO_COLUMN]] if only_front else out


_MIXPE_MARKERS = ["*", "P", "p", "h"]
_BASELINE_MARKERS = ["o", "s", "^", "v", "D", "X", "<", ">", "d", "8"]


def plot_pareto(df: pd.DataFrame, x: str, y: str, path: str | Path, *, minimize: Sequence[str] = (),
                group: str = "pe_kind", family: str = "family", mixpe_label: str = "MixPE",
                logx: bool = False, title: str | None = None, xlabel: str | None = None,
                ylabel: str | None = None) -> Path:
    """Scatter ``y`` against ``x``, the 2-D Pareto front highlighted; MixPE groups and baselines in other markers.

    Parameters
    ----------
    df:
        Sweep results; rows with a missing ``x`` or ``y`` are left out.
    x, y:
        Columns on the axes, e.g. ``tokens_per_s_per_mm2`` (or ``energy_per_token_j``) and ``snr_db``.
    path:
        Image file to write (PNG, SVG, PDF by suffix).
    minimize:
        Which of ``x``, ``y`` are better when smaller (default: both maximized).
    group:
        Column giving each point's legend entry and marker (e.g. ``pe_kind`` or ``label``).
    family, mixpe_label:
        Rows whose ``family`` equals ``mixpe_label`` are drawn with the MixPE markers (stars), others with
        baseline markers.
    logx:
        Logarithmic x axis.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from ..plotting import pyplot

    plt = pyplot()
    unknown = [c for c in minimize if c not in (x, y)]
    if unknown:
        raise ValueError(f"minimize names columns not on the axes: {unknown}")
    data = df.copy()
    data[x] = pd.to_numeric(data[x], errors="coerce")
    data[y] = pd.to_numeric(data[y], errors="coerce")
    data = data[np.isfinite(data[x]) & np.isfinite(data[y])]
    maximize = [c for c in (x, y) if c not in minimize]
    data = pareto(data, maximize=maximize, minimize=list(minimize))
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    groups = list(dict.fromkeys(data[group].astype(str))) if group in data else ["all"]
    n_mixpe = n_base = 0
    for i, name in enumerate(groups):
        sub = data[data[group].astype(str) == name] if group in data else data
        is_mixpe = family in sub and (sub[family] == mixpe_label).all()
        if is_mixpe:
            marker, size = _MIXPE_MARKERS[n_mixpe % len(_MIXPE_MARKERS)], 90
            n_mixpe += 1
        else:
            marker, size = _BASELINE_MARKERS[n_base % len(_BASELINE_MARKERS)], 36
            n_base += 1
        label = f"{name} ({mixpe_label})" if is_mixpe else name
        ax.scatter(sub[x], sub[y], marker=marker, s=size, alpha=0.75, color=f"C{i % 10}", label=label,
                   zorder=3 if is_mixpe else 2)
    front = data[data[PARETO_COLUMN]].sort_values([x, y])
    if len(front):
        ax.scatter(front[x], front[y], s=180, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4,
                   label="Pareto front")
        # the boundary of the dominated region, a staircase: between two front points (by x) the best
        # attainable y is that of the right one when x is maximized, of the left one when minimized
        style = "steps-post" if x in minimize else "steps-pre"
        ax.plot(front[x], front[y], color="black", linewidth=1.0, drawstyle=style, zorder=1)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or (f"{x} (lower is better)" if x in minimize else x))
    ax.set_ylabel(ylabel or (f"{y} (lower is better)" if y in minimize else y))
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
