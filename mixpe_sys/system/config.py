"""System configs: several chips of one design, the links between them, and how a model is split.

A system file (YAML or JSON) names the chip design (a preset or a design
file, relative to the system file), the number of chips, the inter-chip
topology with the bandwidth and latency of its links, and the parallelism of
one model replica: ``tp`` chips share each layer (tensor parallelism) and
``pp`` groups of layers run one after another (pipeline parallelism). A
replica uses ``tp * pp`` chips; serving runs several replicas on one system.

>>> cfg = SystemConfig(name="pair", design="mixpe-w4a8", num_chips=2, tp=2,
...                    topology=TopologyConfig(kind="ring", link=LinkConfig(
...                        bandwidth_bytes_per_s=63.0e9, latency_ns=500.0)))
>>> cfg.chips_per_replica
2
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config_base import ConfigBase, param
from ..errors import ConfigError


class TopologyKind(str, enum.Enum):
    """How the chips are wired."""

    RING = "ring"  # chip i <-> chip i+1 (mod n)
    SWITCH = "switch"  # every chip has one link to a central switch (NVSwitch-like, all to all)
    TORUS2D = "torus2d"  # rows x cols grid with wrap-around links
    EXPLICIT = "explicit"  # the edge list given in the file


class CollectiveAlgorithm(str, enum.Enum):
    """How all-reduce and all-gather move their data."""

    RING = "ring"  # 2(p-1) (all-reduce) or p-1 (all-gather) steps of n/p bytes around a logical ring
    TREE = "tree"  # binomial tree: reduce to rank 0, then broadcast, log2(p) steps of n bytes each way


@dataclass(frozen=True, kw_only=True)
class LinkConfig(ConfigBase):
    """One inter-chip link (each direction has this bandwidth)."""

    bandwidth_bytes_per_s: float = param(help="bandwidth of the link in each direction", unit="bytes/s", gt=0)
    latency_ns: float = param(help="time from the first byte leaving to its arrival (one hop)", unit="ns", ge=0)


@dataclass(frozen=True, kw_only=True)
class EdgeConfig(ConfigBase):
    """One link of an explicit topology between chips ``a`` and ``b`` (both directions)."""

    a: int = param(help="chip index at one end", ge=0)
    b: int = param(help="chip index at the other end", ge=0)
    bandwidth_bytes_per_s: float = param(help="bandwidth in each direction", unit="bytes/s", gt=0)
    latency_ns: float = param(help="one-hop latency", unit="ns", ge=0)

    def validate(self) -> None:
        if self.a == self.b:
            raise ConfigError(f"field 'b': a link must join two different chips, got {self.a} and {self.b}")


@dataclass(frozen=True, kw_only=True)
class TopologyConfig(ConfigBase):
    """The inter-chip network."""

    kind: TopologyKind = param(help="ring, switch, torus2d or explicit")
    link: LinkConfig | None = param(None, help="every link of a ring, switch or torus2d (a switch topology: "
                                               "each chip's link to the switch, so chip to chip is two hops)")
    rows: int = param(0, help="torus2d rows (0 = the largest divisor of num_chips not above its square root)",
                      unit="chips", ge=0)
    edges: tuple[EdgeConfig, ...] = param((), help="explicit topology: the links, each with its own bandwidth "
                                                   "and latency")

    def validate(self) -> None:
        if self.kind is TopologyKind.EXPLICIT:
            if not self.edges:
                raise ConfigError("field 'edges': an explicit topology needs at least one edge")
        elif self.link is None:
            raise ConfigError(f"field 'link': a {self.kind.value} topology needs a link "
                              f"(bandwidth_bytes_per_s, latency_ns)")
        elif self.edges:
            raise ConfigError(f"field 'edges': only an explicit topology takes an edge list, not {self.kind.value}")


@dataclass(frozen=True, kw_only=True)
class SystemConfig(ConfigBase):
    """Several chips of one design, their links, and the parallelism of one model replica."""

    name: str = param(help="system name")
    description: str = param("", help="what this system is and where its numbers come from")
    design: str = param(help="chip design: a preset name or a design file (relative to the system file)")
    num_chips: int = param(help="chips in the system", unit="chips", ge=1)
    topology: TopologyConfig = param(help="how the chips are wired")
    tp: int = param(1, help="tensor-parallel degree: chips sharing every layer of one replica", unit="chips", ge=1)
    pp: int = param(1, help="pipeline-parallel degree: stages of consecutive layers of one replica",
                    unit="stages", ge=1)
    microbatches: int = param(0, help="micro-batches a batch is split into for the pipeline (whole sequences; "
                                      "0 = pp)", ge=0)
    collective: CollectiveAlgorithm = param(CollectiveAlgorithm.RING, help="all-reduce / all-gather algorithm: "
                                                                           "ring or tree")

    def validate(self) -> None:
        if not self.name.strip():
            raise ConfigError("field 'name': must not be empty")
        if self.tp * self.pp > self.num_chips:
            raise ConfigError(f"field 'tp': tp x pp = {self.tp} x {self.pp} = {self.tp * self.pp} chips per replica, "
                              f"but the system has {self.num_chips}")
        if self.topology.kind is TopologyKind.EXPLICIT:
            for i, e in enumerate(self.topology.edges):
                for end in (e.a, e.b):
                    if end >= self.num_chips:
                        raise ConfigError(f"field 'topology.edges.{i}': chip {end} does not exist "
                                          f"(num_chips {self.num_chips})")
        if self.topology.kind is TopologyKind.TORUS2D and self.topology.rows:
            if self.num_chips % self.topology.rows:
                raise ConfigError(f"field 'topology.rows': must divide num_chips ({self.num_chips}), "
                                  f"got {self.topology.rows}")

    @property
    def chips_per_replica(self) -> int:
        """Chips one model replica occupies (``tp * pp``)."""
        return self.tp * self.pp

    @property
    def pipeline_microbatches(self) -> int:
        """Micro-batches per pipeline pass (``microbatches``, or ``pp`` when 0)."""
        return self.microbatches or self.pp
