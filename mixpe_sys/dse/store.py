"""``results.csv`` of a sweep: one row per finished point, appended atomically, safe to resume.

Only the process running the sweep writes the file, holding an exclusive
lock on ``.results.csv.lock`` so that two sweeps cannot write the same
directory. Each row is one line (cells never contain line breaks) written
with a single ``write`` and ``fsync``; a sweep killed mid-write can leave at
most a partial last line, which the next run removes before it reads the ids
already done. When the columns change (a sweep gained a parameter), the file
is rewritten once with the union of columns, through a temporary file and
``os.replace``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..errors import MixpeError

RESULTS_FILE = "results.csv"
LOCK_FILE = ".results.csv.lock"


def _cell(value: Any) -> str:
    """One CSV cell: floats round-trip exactly (repr), None/NaN blank, no line breaks."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=True, default=str)
    return " ".join(str(value).splitlines())


def _line(cells: Iterable[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(list(cells))
    return buf.getvalue().encode("utf-8")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class ResultsStore:
    """The results file of one sweep directory; use as a context manager (takes the directory's lock).

    Parameters
    ----------
    out_dir:
        Sweep output directory (created if missing).
    columns:
        Columns this sweep writes; a file with other columns is rewritten once with their union.
    """

    def __init__(self, out_dir: str | Path, columns: list[str]):
        self.dir = Path(out_dir)
        self.path = self.dir / RESULTS_FILE
        self.columns = list(columns)
        self._lock_fd: int | None = None
        self._fd: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def __enter__(self) -> "ResultsStore":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Lock the directory, repair a partial last row, reconcile the header, open for appending."""
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise MixpeError(f"another sweep is writing {self.path} (it holds {self.dir / LOCK_FILE})") from None
        self._repair()
        header, rows = self._read_raw()
        if header is None:
            self._rewrite(self.columns, [])
        elif header != self.columns:
            merged = self.columns + [c for c in header if c not in self.columns]
            if merged != header:
                self._rewrite(merged, rows)
            self.columns = merged
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        """Close the file and release the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # -- reading -------------------------------------------------------------------------------------------------
    def _repair(self) -> None:
        """Drop a partial last line (a run killed mid-write)."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def _read_raw(self) -> tuple[list[str] | None, list[dict[str, str]]]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None, []
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [dict(zip(header, r)) for r in reader if r] if header else []
        return header, rows

    def done_ids(self) -> set[str]:
        """Ids of the points already in the file (ok or error)."""
        _, rows = self._read_raw()
        return {r.get("point_id", "") for r in rows}

    def error_rows(self, ids: set[str]) -> list[dict[str, str]]:
        """The rows with status ``error`` among the points ``ids``, in file order."""
        _, rows = self._read_raw()
        return [r for r in rows if r.get("status") == "error" and r.get("point_id") in ids]

    def error_ids(self) -> set[str]:
        """Ids of the points recorded with status ``error``."""
        _, rows = self._read_raw()
        return {r.get("point_id", "") for r in rows if r.get("status") == "error"}

    # -- writing -------------------------------------------------------------------------------------------------
    def _rewrite(self, columns: list[str], rows: list[Mapping[str, Any]]) -> None:
        """Replace the whole file atomically (temporary file, fsync, os.replace)."""
        tmp = self.path.with_name(f".{RESULTS_FILE}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(_line(columns))
            for row in rows:
                f.write(_line(_cell(row.get(c)) if not isinstance(row.get(c), str) else row[c] for c in columns))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.dir)

    def drop(self, ids: set[str]) -> None:
        """Remove the rows of these point ids (atomically), e.g. to run failed points again."""
        if self._fd is None:
            raise RuntimeError("open the store first")
        _, rows = self._read_raw()
        os.close(self._fd)
        self._rewrite(self.columns, [r for r in rows if r.get("point_id") not in ids])
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row (one write, then fsync); keys outside the columns are ignored."""
        if self._fd is None:
            raise RuntimeError("open the store first")
        data = _line(_cell(row.get(c)) for c in self.columns)
        os.write(self._fd, data)
        os.fsync(self._fd)


def read_results(path: str | Path) -> pd.DataFrame:
    """A sweep's results as a DataFrame: ``DIR`` or ``DIR/results.csv``; a partial last line is ignored."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    return pd.read_csv(io.BytesIO(data), dtype={"point_id": str})
