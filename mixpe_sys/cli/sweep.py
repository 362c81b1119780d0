"""``mixpe-sim sweep``: design-space exploration over a sweep YAML, in-process or on Dask."""

from __future__ import annotations

from pathlib import Path

from .common import add_no_cache_arg, add_no_fast_forward_arg, check_output_dir, positive_int
from ..errors import MixpeError


def cmd_sweep(args) -> int:
    from ..dse import load_sweep, run_sweep

    if args.no_dask and (args.scheduler or args.workers):
        raise MixpeError("--no-dask runs in this process; drop --scheduler/--workers")
    if args.scheduler and args.workers:
        raise MixpeError("--workers sizes a local cluster; an existing cluster (--scheduler) has its own workers")
    check_output_dir(args.out, "--out")
    sweep = load_sweep(args.sweep)  # check the file (every point's design) before starting a cluster
    run = run_sweep(sweep, args.out, scheduler=args.scheduler, workers=args.workers, use_dask=not args.no_dask,
                    processes=not args.threads, retry_errors=args.retry_errors, progress=None,
                    base_dir=Path(args.sweep).resolve().parent, cache_dir=False if args.no_cache else None,
                    fast_forward=not args.no_fast_forward)
    ok = run.points - len(run.failed)
    stale = f"; {run.stale} rows of points no longer in the sweep kept" if run.stale else ""
    print(f"{sweep.name}: {run.points} points, {len(run.computed)} run now ({run.errors} errors), "
          f"{run.skipped} already done; {ok} ok in {run.results_path}{stale} ({run.wall_s:.1f} s)")
    if run.failed:
        raise MixpeError(f"{len(run.failed)} of {run.points} points ended with an error (column 'error' of "
                         f"{run.results_path}; run them again with --retry-errors); first: {run.first_error}")
    return 0


def register(sub) -> None:
    """Add ``sweep`` to the ``mixpe-sim`` parser."""
    p = sub.add_parser("sweep", help="run a design-space sweep (grid or list of design points x workloads)",
                       description="Run every point of SWEEP.yaml not yet in DIR/results.csv (one row per point, "
                                   "written as it finishes; run again to resume). Points run as tasks on a Dask "
                                   "LocalCluster, on an existing cluster (--scheduler), or in this process "
                                   "(--no-dask).")
    p.add_argument("sweep", metavar="SWEEP.yaml", help="sweep file (see experiments/sweeps/example.yaml)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (results.csv)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler, e.g. "
                                                          "tcp://host:8786 (default: start a local cluster)")
    p.add_argument("--workers", type=positive_int, help="local cluster worker processes (default: CPU count)")
    add_no_cache_arg(p)
    add_no_fast_forward_arg(p)
    p.add_argument("--threads", action="store_true", help="local cluster workers as threads of this process")
    p.add_argument("--no-dask", action="store_true", help="run every point in this process, one after another")
    p.add_argument("--retry-errors", action="store_true", help="run again the points recorded with status error")
    p.set_defaults(func=cmd_sweep)

