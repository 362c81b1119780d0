"""Documented size limits: what the simulator refuses, with a one-line error, instead of hanging.

Each limit is far above any physical design or model it is meant for, and
low enough that an input at the limit answers in minutes and fits in memory:

========================  =============  ==================================================
limit                     value          why
========================  =============  ==================================================
``MAX_DIM``               2**31 - 1      elements along one GEMM dimension (M, N, K) or
                                         instances (batch): the int32 index range
``MAX_TILE_STEPS``        2,500,000      tile steps of one GEMM (each a Python object and a
                                         row of ``steps``): about 3 minutes and 4.5 GB at
                                         the measured 1.8 kB and 66 reference us per step
``MAX_RUN_OPS``           1,000,000      ops of one model run or operator trace (one row
                                         each in ``ops``): about 1.6 GB
``MAX_TILES``             4,096          compute tiles of a design (one SimPy process and
                                         one interconnect node each)
``MAX_ARRAY_DIM``         65,536         PE rows or columns of one array
``MAX_DRAM_CHANNELS``     1,024          DRAM channels (one FIFO server each)
``MAX_BANKS``             1,024          DRAM banks per channel (row-buffer timing)
``MAX_FREQUENCY_HZ``      1e11           core clock: 100 GHz, over ten times any CMOS
                                         logic clock
``MIN_FREQUENCY_HZ``      1              core clock: 1 Hz (slower gives no finite time)
``MIN_BANDWIDTH...``      1 byte/s       a DRAM channel's sustained bandwidth or a link's:
                                         below it times overflow to infinity
========================  =============  ==================================================

The per-step figures: ``simulate_gemm(8192, 12288, 12288, "a100-like")``, 589,824 tile steps,
peaked at 1.07 GB and took 39 reference seconds (``benchmarks/refsec.py``); a Llama-2-7B run of
428,032 ops (``prompt=64, generate=1024``) peaked at 0.67 GB. The largest GEMM of
``experiments/validate_gpu.py --all`` has 2.1 M tile steps.

Model runs are further bounded by the model and the design themselves: the
prompt and generated tokens of a sequence must fit the model's context
(``max_position_embeddings``) and the KV cache of every sequence must fit the
DRAM left after the weights (:mod:`mixpe_sys.checks`).

This module imports nothing from the package but its errors, so config
classes can use its constants as bounds.
"""

from __future__ import annotations

from .errors import ConfigError

MAX_DIM = 2**31 - 1
MAX_TILE_STEPS = 2_500_000
MAX_RUN_OPS = 1_000_000
MAX_TILES = 4096
MAX_ARRAY_DIM = 65536
MAX_DRAM_CHANNELS = 1024
MAX_BANKS = 1024
MAX_FREQUENCY_HZ = 1e11
MIN_FREQUENCY_HZ = 1.0
MIN_BANDWIDTH_BYTES_PER_S = 1.0


def check_at_most(field: str, value: int | float, limit: int | float, why: str, source: str | None = None,
                  line: int | None = None) -> None:
    """Raise a ConfigError naming ``field`` when ``value`` exceeds ``limit``.

    Parameters
    ----------
    field:
        Name shown to the user (a config path or a command-line option).
    value, limit:
        The value and its documented limit.
    why:
        What the limit protects, e.g. ``"tile steps of one GEMM"``.
    source, line:
        File and line the value came from, if any.
    """
    if value > limit:
        raise ConfigError(f"field '{field}': {value:,} is above the limit of {limit:,} {why} "
                          f"(mixpe_sys.limits)", source, line)


def check_gemm_dims(m: int, n: int, k: int, batch: int = 1, *, names: tuple[str, str, str, str] = ("m", "n", "k",
                                                                                                      "batch"),
                    source: str | None = None, line: int | None = None) -> None:
    """Every GEMM dimension at most :data:`MAX_DIM` (errors name the dimension)."""
    for name, value in zip(names, (m, n, k, batch)):
        check_at_most(name, value, MAX_DIM, "elements per GEMM dimension", source, line)
