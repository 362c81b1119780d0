"""Kernel launch costs as a runtime sees them: CUDA-graph replay, or eager host dispatch.

A device that runs each op as a separately launched kernel (a GPU) pays a
fixed cost per kernel on top of the kernel's own time. How much depends on
how the runtime issues the kernels, a property of the run, not of the chip:

- ``graph``: the kernels are replayed from a captured CUDA graph (what
  serving runtimes such as vLLM and TensorRT-LLM do for decode, and
  ``torch.compile(mode="reduce-overhead")``): each kernel costs the gap the
  GPU leaves between back-to-back kernels of a graph, ``graph_launch_ns``.
- ``eager``: every kernel is dispatched from the host and waited for, as a
  host-timed measurement (wall clock around one call and a synchronize, e.g.
  LLMCompass's A100 GEMM timings) sees it: ``launch_ns`` (launch to
  completion seen by the host) plus the framework's ``host_dispatch_ns``.

A design without a ``launch`` block (an accelerator fed by its own
sequencer) pays nothing in either mode.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config_base import ConfigBase, param
from ..errors import enum_choice


class LaunchMode(str, enum.Enum):
    """How a run issues its kernels (see the module docstring)."""

    GRAPH = "graph"  # replayed from a CUDA graph: graph_launch_ns per kernel
    EAGER = "eager"  # launched from the host and waited for: launch_ns + host_dispatch_ns per kernel


def launch_mode(value: LaunchMode | str) -> LaunchMode:
    """``value`` as a :class:`LaunchMode`.

    Raises
    ------
    ConfigError
        If it names no mode.
    """
    return enum_choice(LaunchMode, value, "launch", "launch mode")


@dataclass(frozen=True, kw_only=True)
class LaunchConfig(ConfigBase):
    """Fixed costs per kernel of a kernel-launched device, one per :class:`LaunchMode`."""

    graph_launch_ns: float = param(help="per kernel replayed from a CUDA graph: the device's gap between "
                                   "back-to-back kernels of one graph", unit="ns", ge=0)
    launch_ns: float = param(help="per kernel launched on its own and waited for: launch to completion "
                             "as the host sees it, kernel time excluded (eager mode)", unit="ns", ge=0)
    host_dispatch_ns: float = param(0.0, help="per kernel, eager mode only: the framework's host-side work "
                                    "before the launch (e.g. PyTorch's Python and dispatcher path)",
                                    unit="ns", ge=0)

    def kernel_overhead_ns(self, mode: LaunchMode | str) -> float:
        """Fixed cost of one kernel under ``mode`` (ns)."""
        if launch_mode(mode) is LaunchMode.GRAPH:
            return self.graph_launch_ns
        return self.launch_ns + self.host_dispatch_ns


def kernel_overhead_ns(launch: LaunchConfig | None, mode: LaunchMode | str) -> float:
    """Fixed cost of one kernel (ns) of a design's ``launch`` block under ``mode``; 0 without one."""
    mode = launch_mode(mode)
    return 0.0 if launch is None else launch.kernel_overhead_ns(mode)
