"""Options shared by ``run``, ``replay`` and ``capacity`` for systems of chips and replicas."""

from __future__ import annotations

import argparse

from ..errors import MixpeError
from .common import nonneg_int, positive_float, positive_int


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def add_system_args(p: argparse.ArgumentParser) -> None:
    """--system, --tp, --pp, --microbatches and the link of an ad-hoc system."""
    from ..system.presets import PCIE5_X16_BYTES_PER_S, PCIE_HOP_LATENCY_NS

    g = p.add_argument_group("system of chips")
    g.add_argument("--system", metavar="NAME|FILE.yaml",
                   help="a system preset (dgx-a100, mixpe-board4) or system file: its chip design replaces "
                        "--design/--config")
    g.add_argument("--tp", type=positive_int, help="tensor-parallel degree (default: the system's, else 1)")
    g.add_argument("--pp", type=positive_int, help="pipeline-parallel degree (default: the system's, else 1)")
    g.add_argument("--microbatches", type=nonneg_int,
                   help="micro-batches per pipeline pass (default: the system's, else pp)")
    g.add_argument("--link-bandwidth", type=positive_float, default=PCIE5_X16_BYTES_PER_S, metavar="BYTES_PER_S",
                   help="without --system: bandwidth per direction of each chip's link to the switch joining "
                        "the chips (default PCIe 5.0 x16, 63.0e9)")
    g.add_argument("--link-latency-ns", type=_nonneg_float, default=PCIE_HOP_LATENCY_NS, metavar="NS",
                   help=f"without --system: latency of each of those links (default {PCIE_HOP_LATENCY_NS:g}, "
                        f"assumed; see mixpe_sys.system.presets)")


def add_scale_args(p: argparse.ArgumentParser) -> None:
    """--replicas, --router, --disaggregate and the KV-transfer link."""
    g = p.add_argument_group("replicas")
    g.add_argument("--replicas", type=positive_int, default=1,
                   help="model replicas, each one tp x pp group of chips, default 1")
    g.add_argument("--router", choices=["round_robin", "least_outstanding", "least_kv"], default="round_robin",
                   help="which replica takes an arriving request: round_robin (default), least_outstanding "
                        "(fewest unfinished requests) or least_kv (least KV-cache demand)")
    g.add_argument("--disaggregate", metavar="P:D",
                   help="P prefill replicas and D decode replicas (instead of --replicas); the KV cache moves "
                        "between them over the system's links, or over --kv-link-bandwidth")
    g.add_argument("--kv-link-bandwidth", type=positive_float, metavar="BYTES_PER_S",
                   help="with --disaggregate: move KV caches over a separate network, one link of this bandwidth "
                        "per chip (e.g. 25e9 for a 200 Gb/s NIC); default: the system's links")
    g.add_argument("--kv-link-latency-ns", type=_nonneg_float, default=2000.0, metavar="NS",
                   help="latency of those links (default 2000, assumed: a few microseconds per network hop)")


def wants_system(args) -> bool:
    """True when any system or replica option departs from one chip serving alone."""
    return bool(args.system or args.tp or args.pp or args.microbatches
                or getattr(args, "replicas", 1) > 1 or getattr(args, "disaggregate", None))


def pools(args) -> tuple[int, tuple[int, int] | None]:
    """(replicas, (P, D) or None) from the options."""
    from ..serving.cluster import pool_sizes

    if getattr(args, "disaggregate", None):
        if args.replicas > 1:
            raise MixpeError("give either --replicas or --disaggregate P:D, not both")
        p, d = pool_sizes(args.disaggregate)
        return p + d, (p, d)
    return getattr(args, "replicas", 1), None


def resolve_system(args, design, replicas: int = 1):
    """The system of the options: a preset or file with --tp/--pp/--microbatches over it, or
    ``replicas x tp x pp`` chips of ``design`` on a switch."""
    from ..system import LinkConfig, load_system, system_of_design

    if args.system:
        return load_system(args.system).with_parallelism(args.tp, args.pp, args.microbatches)
    tp, pp = args.tp or 1, args.pp or 1
    link = LinkConfig(bandwidth_bytes_per_s=args.link_bandwidth, latency_ns=args.link_latency_ns)
    return system_of_design(design, num_chips=replicas * tp * pp, tp=tp, pp=pp, microbatches=args.microbatches or 0,
                            link=link)


def kv_link(args):
    """The separate KV-transfer link, or None."""
    from ..system import LinkConfig

    if getattr(args, "kv_link_bandwidth", None) is None:
        return None
    return LinkConfig(bandwidth_bytes_per_s=args.kv_link_bandwidth, latency_ns=args.kv_link_latency_ns)
