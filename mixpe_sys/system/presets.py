"""System presets shipped as YAML in ``mixpe_sys/systems``, system files, and ad-hoc systems.

:func:`load_system` reads a preset or a file into a :class:`System`: the
config, the resolved chip design and the link graph. :func:`system_of_design`
builds one for ``--tp``/``--pp`` without a file: chips of one design on a
switch with a stated link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx

from ..config_base import parse_yaml_with_lines
from ..designs import design_names, load_design, read_preset_or_file
from ..errors import ConfigError
from ..hw.config import AcceleratorConfig
from .config import LinkConfig, SystemConfig, TopologyConfig, TopologyKind
from .topology import build_graph, describe_graph

PCIE5_X16_BYTES_PER_S = 32e9 * 16 * 128 / 130 / 8
"""PCIe 5.0 x16, one direction: 32 GT/s per lane x 16 lanes, 128b/130b encoding (PCI-SIG PCIe 5.0 base
specification) = 63.0 GB/s: the link of ``--tp``/``--pp`` without a system file."""

PCIE_HOP_LATENCY_NS = 500.0
"""Assumed one-way latency of a PCIe hop, 0.5 us: the order of the small-transfer PCIe latencies
Neugebauer et al. measured (SIGCOMM 2018, "Understanding PCIe performance for end host networking");
not a specification figure."""


@dataclass(frozen=True)
class System:
    """A resolved system: its config, the chip design and the link graph."""

    config: SystemConfig
    chip: AcceleratorConfig = field(repr=False)
    graph: nx.DiGraph = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.config.name

    def with_parallelism(self, tp: int | None = None, pp: int | None = None,
                         microbatches: int | None = None) -> "System":
        """The same system with other ``tp``/``pp``/``microbatches`` (None keeps each)."""
        changes = {k: v for k, v in (("tp", tp), ("pp", pp), ("microbatches", microbatches)) if v is not None}
        if not changes:
            return self
        return System(self.config.replace(**changes), self.chip, self.graph)

    def describe(self) -> str:
        """One line: chips, design, topology and parallelism."""
        c = self.config
        return (f"{c.name}: {c.num_chips} x {self.chip.name}, {c.topology.kind.value} ({describe_graph(self.graph)}), "
                f"tp {c.tp} x pp {c.pp}, {c.collective.value} collectives")


def _preset_dir():
    return resources.files("mixpe_sys") / "systems"


def system_names() -> list[str]:
    """Names of the shipped system presets."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def _system_preset(name: str) -> tuple[Any, dict]:
    return parse_yaml_with_lines((_preset_dir() / f"{name}.yaml").read_text(encoding="utf-8"), f"system preset {name}")


def resolve(config: SystemConfig, base_dir: Path | None = None, source: str | None = None) -> System:
    """Load the config's chip design (a preset, or a file relative to ``base_dir``) and build its graph."""
    name = config.design
    if name in design_names() or base_dir is None or Path(name).is_absolute():
        chip = load_design(name)
    else:
        chip = load_design(base_dir / name)
    try:
        graph = build_graph(config.topology, config.num_chips)
    except ConfigError as exc:
        raise ConfigError(exc.reason, source) from None
    return System(config=config, chip=chip, graph=graph)


def system_from_data(data, *, source: str | None = None, lines: dict | None = None,
                     base_dir: Path | None = None) -> System:
    """A system from parsed YAML/JSON data."""
    return resolve(SystemConfig.from_dict(data, source=source, lines=lines), base_dir, source)


def load_system(name_or_path: str | Path) -> System:
    """A shipped system by name, or a system YAML/JSON file by path.

    Raises
    ------
    ConfigError
        Unknown name, unreadable or malformed file, unknown or bad field (message names file and line).
    """
    data, source, lines, path = read_preset_or_file(name_or_path, "system", system_names(), _system_preset)
    return system_from_data(data, source=source, lines=lines, base_dir=None if path is None else path.resolve().parent)


def system_of_design(design: AcceleratorConfig, *, num_chips: int, tp: int = 1, pp: int = 1,
                     microbatches: int = 0, link: LinkConfig | None = None) -> System:
    """``num_chips`` chips of ``design`` on a switch (default link: PCIe 5.0 x16, see the constants above)."""
    link = link or LinkConfig(bandwidth_bytes_per_s=PCIE5_X16_BYTES_PER_S, latency_ns=PCIE_HOP_LATENCY_NS)
    cfg = SystemConfig(name=f"{num_chips}x{design.name}", design=design.name, num_chips=num_chips,
                       topology=TopologyConfig(kind=TopologyKind.SWITCH, link=link), tp=tp, pp=pp,
                       microbatches=microbatches,
                       description=f"{num_chips} x {design.name} on a switch, "
                                   f"{link.bandwidth_bytes_per_s / 1e9:g} GB/s + {link.latency_ns:g} ns per link")
    return System(config=cfg, chip=design, graph=build_graph(cfg.topology, num_chips))
