"""Run a sweep: every pending point as an independent task, in-process or on Dask.

Points already in ``DIR/results.csv`` are skipped (resume); the others run
either in this process (``use_dask=False``) or as tasks on a Dask
``distributed`` cluster: a ``LocalCluster`` of single-threaded worker
processes by default, or an existing cluster given by its scheduler address.
Each task is retried twice if its worker dies; every finished point is
appended to the results file at once by this (the only writing) process.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import MixpeError
from .evaluate import STATUS_ERROR, error_row, evaluate_point, result_columns
from .store import ResultsStore
from .sweep import SweepConfig, SweepPoint, expand_points, load_sweep, param_paths

TASK_RETRIES = 2


@dataclass(frozen=True)
class SweepRun:
    """What a sweep run did."""

    results_path: Path
    points: int  # points in the sweep
    skipped: int  # already in the results file
    computed: tuple[str, ...]  # ids run now, in completion order
    errors: int  # of those, how many ended with status error
    wall_s: float  # wall-clock time of the run (s), cluster start-up included
    stale: int = 0  # rows of the results file whose points are no longer in the sweep (kept, not counted)
    failed: tuple[str, ...] = ()  # ids of this sweep's points whose row has status error (this run or earlier)
    first_error: str = ""  # the message of the first of them


def _progress_bar(total: int, initial: int, progress: bool | None):
    from tqdm.auto import tqdm

    enabled = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=total, initial=initial, desc="sweep", unit="pt", disable=not enabled, file=sys.stderr)


def _run_local(points: list[SweepPoint], store: ResultsStore, bar, cache_dir=None,
               fast_forward: bool = True) -> list[dict]:
    rows = []
    for point in points:
        row = evaluate_point(point, cache_dir, fast_forward)
        store.append(row)
        rows.append(row)
        bar.update(1)
    return rows


def _client(scheduler: str | None, workers: int | None, processes: bool):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MixpeError("Dask sweeps need dask[distributed] (pip install 'mixpe_sys[dse]'), "
                         "or run in-process with --no-dask") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise MixpeError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=None)
    return Client(cluster), cluster


def _run_dask(points: list[SweepPoint], store: ResultsStore, bar, *, scheduler: str | None, workers: int | None,
              processes: bool, cache_dir=None, fast_forward: bool = True) -> list[dict]:
    from distributed import as_completed

    client, cluster = _client(scheduler, workers, processes)
    rows = []
    futures = []
    try:
        token = uuid.uuid4().hex[:8]  # keys unique to this run on a shared scheduler
        by_key = {}
        for point in points:
            fut = client.submit(evaluate_point, point, cache_dir, fast_forward, key=f"mixpe-dse-{point.point_id}-{token}",
                                retries=TASK_RETRIES, pure=False)
            futures.append(fut)
            by_key[fut.key] = point
        for fut in as_completed(futures):
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after the retries
                row = error_row(by_key[fut.key], f"task failed after {TASK_RETRIES} retries: "
                                                 f"{type(exc).__name__}: {exc}")
            store.append(row)
            rows.append(row)
            bar.update(1)
            fut.release()
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
        client.close()
        if cluster is not None:
            cluster.close()
    return rows


def run_sweep(sweep: SweepConfig | str | Path, out_dir: str | Path, *, scheduler: str | None = None,
              workers: int | None = None, use_dask: bool = True, processes: bool = True,
              retry_errors: bool = False, progress: bool | None = None, base_dir: str | Path | None = None,
              cache_dir=None, fast_forward: bool = True) -> SweepRun:
    """Run the points of a sweep not yet in ``out_dir/results.csv``.

    Parameters
    ----------
    sweep:
        A SweepConfig or a sweep YAML file.
    out_dir:
        Output directory; ``results.csv`` there gains one row per finished point.
    scheduler:
        Address of a running Dask scheduler (``tcp://host:8786``); None starts a LocalCluster.
    workers:
        LocalCluster worker count (default: the CPU count); each worker has one thread.
    use_dask:
        False runs every point in this process, in order.
    processes:
        LocalCluster workers as processes (True) or threads of this process.
    retry_errors:
        Run again the points recorded with status ``error`` (their rows are replaced).
    progress:
        tqdm progress bar on stderr (None: only on a terminal).
    base_dir:
        Directory relative design and trace paths are resolved against (default: the sweep file's, or ``.``).
    cache_dir:
        Persistent op-cost store of every point: None each worker's default directory, a path, False none.
    fast_forward:
        Skip whole repeated periods of each GEMM's steady state (same results, bit for bit).

    Returns
    -------
    SweepRun
        Counts, the ids computed, the results path and the wall time (s).
    """
    start = time.perf_counter()
    if not isinstance(sweep, SweepConfig):
        path = Path(sweep)
        sweep = load_sweep(path)
        base_dir = path.resolve().parent if base_dir is None else base_dir
    base_dir = Path(base_dir if base_dir is not None else ".").resolve()
    if scheduler is not None and not use_dask:
        raise MixpeError("give either a Dask scheduler address or no Dask, not both")
    points = expand_points(sweep, base_dir)
    ids = {p.point_id for p in points}
    with ResultsStore(out_dir, result_columns(param_paths(sweep))) as store:
        if retry_errors:
            store.drop(store.error_ids() & ids)
        done = store.done_ids()
        pending = [p for p in points if p.point_id not in done]
        skipped = len(points) - len(pending)
        with _progress_bar(len(points), skipped, progress) as bar:
            if not pending:
                rows = []
            elif use_dask:
                rows = _run_dask(pending, store, bar, scheduler=scheduler, workers=workers, processes=processes,
                                 cache_dir=cache_dir, fast_forward=fast_forward)
            else:
                rows = _run_local(pending, store, bar, cache_dir, fast_forward)
        failed = store.error_rows(ids)
    return SweepRun(results_path=store.path, points=len(points), skipped=skipped,
                    computed=tuple(r["point_id"] for r in rows),
                    errors=sum(r.get("status") == STATUS_ERROR for r in rows),
                    wall_s=time.perf_counter() - start, stale=len(done - ids),
                    failed=tuple(r.get("point_id", "") for r in failed),
                    first_error=failed[0].get("error", "") if failed else "")
