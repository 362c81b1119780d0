"""Persistent op-cost store: exact op costs on disk, shared by runs, processes and Dask workers.

An op's cost depends only on the design, the op's
:meth:`~mixpe_sys.workload.ops.Op.cost_key` and the simulator's timing
rules, so a cost once simulated is stored under (``TIMING_VERSION``, the
design's content hash, the cost key) in one SQLite database (WAL mode, so
several processes read and write at once) and read back by later runs.

The database lives in the user cache directory (``platformdirs``), or in
``MIXPE_SIM_CACHE_DIR`` when that is set (``MIXPE_SIM_NO_CACHE=1`` turns it off). A file that is not a SQLite
database, or a database of another program, is reported once with a
:class:`CostStoreWarning` and ignored: the run goes on without the store.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import pickle
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..metrics.records import OpCost

#: Version of the simulator's timing rules. Bump it whenever any change can alter an op's cost
#: (hw/ timing, mapping, op_sim, OpCost fields): costs stored under another version are never read.
TIMING_VERSION = 7

#: Environment variable that moves the cache directory.
CACHE_DIR_ENV = "MIXPE_SIM_CACHE_DIR"
#: Environment variable that, set to anything but "" or "0", turns the default store off (as ``--no-cache``).
NO_CACHE_ENV = "MIXPE_SIM_NO_CACHE"
#: File name of the database inside the cache directory.
DB_NAME = "op_costs.sqlite3"
#: SQLite ``application_id`` marking the database as ours ("MXPE"); any other non-empty database is foreign.
APPLICATION_ID = 0x4D585045
#: How long a writer waits for another process's lock before giving up on that write, s.
BUSY_TIMEOUT_S = 30.0

_SCHEMA = ("CREATE TABLE IF NOT EXISTS op_costs (timing_version TEXT NOT NULL, design_hash TEXT NOT NULL, "
           "cost_key TEXT NOT NULL, cost BLOB NOT NULL, PRIMARY KEY (timing_version, design_hash, cost_key))")


class CostStoreWarning(UserWarning):
    """The cost store cannot be used (corrupt or foreign file, unwritable directory); the run goes on without it."""


def default_cache_dir() -> Path:
    """``$MIXPE_SIM_CACHE_DIR`` if set, else the user cache directory of ``mixpe_sys``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mixpe_sys", appauthor=False))


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def design_hash(design) -> str:
    """SHA-256 of the design's ``to_dict()`` as sorted, compact JSON: equal designs, equal hash."""
    text = json.dumps(design.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cost_key_text(key: tuple) -> str:
    """An op cost key as canonical JSON text (enums by value)."""
    return json.dumps(_plain(key), separators=(",", ":"))


@dataclass(frozen=True)
class StoreInfo:
    """What ``mixpe-sim cache info`` reports."""

    path: Path
    size_bytes: int  # database file plus its WAL and shared-memory files
    entries: int
    entries_by_version: dict[str, int]
    usable: bool  # False: the file is corrupt or foreign and is ignored


class CostStore:
    """One cost database; all methods swallow database errors (warn once, then act as empty).

    Parameters
    ----------
    directory:
        Folder holding the database (created on first write).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._broken = False

    # a store travels to other processes as its path only; each process opens its own connection
    def __getstate__(self) -> dict:
        return {"directory": self.directory}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["directory"])

    def _disable(self, exc: BaseException) -> None:
        if not self._broken:
            warnings.warn(f"op-cost cache {self.path} is unusable and is ignored ({type(exc).__name__}: {exc})",
                          CostStoreWarning, stacklevel=3)
        self._broken = True
        self._close()

    def _close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited through fork is never used
        if not create and not self.path.exists():
            return None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                if not _is_ours(conn):  # an empty file: mark and create it in one transaction (racing creators)
                    with _transaction(conn):
                        if not _is_ours(conn):
                            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                            conn.execute(_SCHEMA)
                _write_ahead_log(conn)
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: never corrupt, at worst loses the last writes
            except BaseException:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return None
        self._conn, self._pid = conn, os.getpid()
        return conn

    def get_many(self, dhash: str, keys: Iterable[tuple]) -> dict[tuple, OpCost]:
        """The stored costs among ``keys`` on the design ``dhash`` (missing or bad entries are left out)."""
        keys = list(keys)
        conn = self._connect(create=False)
        if conn is None or not keys:
            return {}
        by_text = {cost_key_text(k): k for k in keys}
        texts = list(by_text)
        found: dict[tuple, OpCost] = {}
        try:
            for i in range(0, len(texts), 500):  # SQLite's bound-parameter limit
                chunk = texts[i:i + 500]
                rows = conn.execute(f"SELECT cost_key, cost FROM op_costs WHERE timing_version=? AND design_hash=? "
                                    f"AND cost_key IN ({','.join('?' * len(chunk))})",
                                    [str(TIMING_VERSION), dhash, *chunk]).fetchall()
                for text, blob in rows:
                    cost = _unpickle(blob)
                    if cost is not None:
                        found[by_text[text]] = cost
        except sqlite3.Error as exc:
            self._disable(exc)
            return {}
        return found

    def get(self, dhash: str, key: tuple) -> OpCost | None:
        """One stored cost, or None."""
        return self.get_many(dhash, [key]).get(key)

    def put_many(self, dhash: str, costs: Mapping[tuple, OpCost]) -> None:
        """Store ``costs`` (cost key -> OpCost) for the design ``dhash``, in one transaction."""
        if not costs:
            return
        conn = self._connect(create=True)
        if conn is None:
            return
        rows = [(str(TIMING_VERSION), dhash, cost_key_text(k), pickle.dumps(c, protocol=pickle.HIGHEST_PROTOCOL))
                for k, c in costs.items()]
        try:
            with _transaction(conn):
                conn.executemany("INSERT OR REPLACE INTO op_costs VALUES (?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            self._disable(exc)

    def put(self, dhash: str, key: tuple, cost: OpCost) -> None:
        """Store one cost."""
        self.put_many(dhash, {key: cost})

    def info(self) -> StoreInfo:
        """Path, size on disk, entry counts (a corrupt or foreign file reports ``usable=False``)."""
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
                   if p.exists())
        conn = self._connect(create=False)
        by_version: dict[str, int] = {}
        if conn is not None:
            try:
                by_version = {str(v): int(n) for v, n in conn.execute(
                    "SELECT timing_version, COUNT(*) FROM op_costs GROUP BY timing_version ORDER BY timing_version")}
            except sqlite3.Error as exc:
                self._disable(exc)
        return StoreInfo(path=self.path, size_bytes=size, entries=sum(by_version.values()),
                         entries_by_version=by_version, usable=not self._broken)

    def clear(self) -> int:
        """Delete every stored cost; returns how many there were. A corrupt or foreign file is removed."""
        conn = self._connect(create=False)
        if conn is None:
            removed = 0
            if self._broken:
                for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                    p.unlink(missing_ok=True)
                self._broken = False
            return removed
        try:
            with _transaction(conn):
                removed = conn.execute("DELETE FROM op_costs").rowcount
            conn.execute("VACUUM")
        except sqlite3.Error as exc:
            self._disable(exc)
            return 0
        return removed

    def close(self) -> None:
        """Close this process's connection."""
        self._close()


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _is_ours(conn: sqlite3.Connection) -> bool:
    """True for our database, False for an empty one; raises DatabaseError for any other file."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if app_id == APPLICATION_ID and "op_costs" in tables:
        return True
    if app_id == 0 and not tables:
        return False
    raise sqlite3.DatabaseError(f"not a mixpe_sys cost database (application_id {app_id}, tables {sorted(tables)})")


def _unpickle(blob: bytes) -> OpCost | None:
    try:
        value = pickle.loads(blob)
    except Exception:  # noqa: BLE001 - any bad blob is a miss, never a crash
        return None
    return value if isinstance(value, OpCost) else None


def open_store(cache_dir: str | Path | bool | None = None) -> CostStore | None:
    """The store a run uses: ``None`` -> the default directory (none when ``$MIXPE_SIM_NO_CACHE`` is set),
    ``True`` -> the default directory, a path -> that directory, ``False`` -> none."""
    if cache_dir is False:
        return None
    if cache_dir is None and os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    if cache_dir is None or cache_dir is True:
        return CostStore(default_cache_dir())
    return CostStore(cache_dir)


def _write_ahead_log(conn: sqlite3.Connection) -> None:
    """Switch ``conn``'s database to WAL mode. The switch takes an exclusive lock, and SQLite answers
    "database is locked" at once, without its busy handler, while another process holds the lock
    (two creators at once): retried with backoff for up to ``BUSY_TIMEOUT_S``."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay_s = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(delay_s)
            delay_s = min(2 * delay_s, 0.05)
