"""``mixpe-sim cache info | clear``: the persistent op-cost cache."""

from __future__ import annotations

import json

from .common import print_table


def _store(args):
    from ..sim.cost_store import CostStore, default_cache_dir

    return CostStore(args.dir if args.dir else default_cache_dir())


def cmd_info(args) -> int:
    from ..sim.cost_store import TIMING_VERSION

    info = _store(args).info()
    if args.json:
        print(json.dumps({"path": str(info.path), "size_bytes": info.size_bytes, "entries": info.entries,
                          "entries_by_timing_version": info.entries_by_version, "usable": info.usable,
                          "timing_version": TIMING_VERSION}))
        return 0
    rows = [("path", str(info.path)), ("size", f"{info.size_bytes} bytes"), ("entries", str(info.entries)),
            ("timing version now", str(TIMING_VERSION))]
    rows += [(f"entries of timing version {v}", str(n)) for v, n in info.entries_by_version.items()]
    if not info.usable:
        rows.append(("state", "unusable (corrupt or foreign file; ignored by runs, `cache clear` removes it)"))
    print_table(rows)
    return 0


def cmd_clear(args) -> int:
    store = _store(args)
    removed = store.clear()
    store.close()
    print(f"cleared {removed} op costs from {store.path}")
    return 0


def register(sub) -> None:
    """Add ``cache info`` and ``cache clear`` to the ``mixpe-sim`` parser."""
    p = sub.add_parser("cache", help="show or clear the persistent op-cost cache",
                       description="Exact op costs are kept in an SQLite file keyed by design content hash, op "
                                   "shape and simulator timing version, in the user cache directory or "
                                   "$MIXPE_SIM_CACHE_DIR.")
    csub = p.add_subparsers(dest="cache_command", required=True, parser_class=type(p))
    for name, func, text in (("info", cmd_info, "path, size, entries per timing version"),
                             ("clear", cmd_clear, "delete every stored op cost")):
        q = csub.add_parser(name, help=text)
        q.add_argument("--dir", metavar="DIR", help="cache directory (default: $MIXPE_SIM_CACHE_DIR or the user "
                                                    "cache directory)")
        if name == "info":
            q.add_argument("--json", action="store_true", help="print one JSON object")
        q.set_defaults(func=func)
