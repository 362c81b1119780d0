"""Systems of several chips: tensor and pipeline parallelism over an inter-chip link graph.

A :class:`~.presets.System` (a preset from ``mixpe_sys/systems`` or a YAML
file, see :func:`~.presets.load_system`) is chips of one design, the links
between them (:mod:`.topology`, :mod:`.links`) and the parallelism of one
model replica. :func:`~.run.simulate_system` runs a model's prefill and
decode on one replica, with collectives (:mod:`.collectives`) and pipeline
stages (:mod:`.pipeline`) simulated as SimPy transfers over the links;
:func:`~.serve.replay_system` serves a request trace on replicas of it.
"""

from .config import (CollectiveAlgorithm, EdgeConfig, LinkConfig, SystemConfig, TopologyConfig,
                     TopologyKind)
from .presets import System, load_system, system_names, system_of_design
from .run import SystemResult, simulate_system

__all__ = ["CollectiveAlgorithm", "EdgeConfig", "LinkConfig", "SystemConfig", "TopologyConfig", "TopologyKind",
           "System", "load_system", "system_names", "system_of_design", "SystemResult", "simulate_system"]
