"""Seeded synthetic request traces: Poisson arrivals, fixed or lognormal token lengths."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config_base import ConfigBase, param
from ..errors import ConfigError
from .request_formats import MAX_TOKENS


@dataclass(frozen=True)
class LogNormalTokens(ConfigBase):
    """Token-length distribution: lognormal with a given mean, rounded, clipped to [1, max]."""

    mean_tokens: float = param(help="mean of the lognormal before rounding and clipping",
                               unit="tokens", gt=0)
    sigma: float = param(help="standard deviation of log(length)", ge=0)
    max_tokens: int = param(help="upper clip of a sampled length", unit="tokens", ge=1, le=MAX_TOKENS)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` lengths (int64 tokens) from ``rng``."""
        mu = math.log(self.mean_tokens) - self.sigma ** 2 / 2
        draws = rng.lognormal(mu, self.sigma, n)
        return np.clip(np.rint(draws), 1, self.max_tokens).astype(np.int64)


CONV_PROMPT_TOKENS = LogNormalTokens(mean_tokens=1155.0, sigma=1.0, max_tokens=16384)
"""Prompt lengths resembling the Azure 2023 conversation trace."""
CONV_OUTPUT_TOKENS = LogNormalTokens(mean_tokens=211.0, sigma=0.85, max_tokens=4096)
"""Output lengths resembling the Azure 2023 conversation trace."""


def _lengths(spec: int | LogNormalTokens, name: str, rng: np.random.Generator,
             n: int) -> np.ndarray:
    if isinstance(spec, LogNormalTokens):
        return spec.sample(rng, n)
    if isinstance(spec, bool) or not isinstance(spec, (int, np.integer)) or not 1 <= spec <= MAX_TOKENS:
        raise ConfigError(f"field '{name}': must be an integer in [1, {MAX_TOKENS}] "
                          f"or a LogNormalTokens, got {spec!r}")
    return np.full(n, int(spec), dtype=np.int64)


def synthetic_requests(n: int, *, rate_per_s: float,
                       prompt_tokens: int | LogNormalTokens = CONV_PROMPT_TOKENS,
                       output_tokens: int | LogNormalTokens = CONV_OUTPUT_TOKENS,
                       seed: int = 0) -> pd.DataFrame:
    """Poisson request arrivals with fixed or lognormal prompt/output lengths.

    Parameters
    ----------
    n:
        Number of requests (>= 1).
    rate_per_s:
        Mean arrival rate (requests/s); inter-arrival times are exponential.
    prompt_tokens, output_tokens:
        A fixed length (tokens) or a :class:`LogNormalTokens` distribution.
    seed:
        Seed of :func:`numpy.random.default_rng`; arrivals, prompt and output
        lengths use independent child streams, so changing one does not
        change the others.

    Returns
    -------
    pandas.DataFrame
        A request trace; the first request arrives at 0.0 s.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"field 'n': must be an integer >= 1, got {n!r}")
    if (isinstance(rate_per_s, bool) or not isinstance(rate_per_s, (int, float))
            or not math.isfinite(rate_per_s) or rate_per_s <= 0):
        raise ConfigError(f"field 'rate_per_s': must be a finite number > 0 requests/s, got {rate_per_s!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"field 'seed': must be an integer >= 0, got {seed!r}")
    arrival_rng, prompt_rng, output_rng = np.random.default_rng(int(seed)).spawn(3)
    gaps = arrival_rng.exponential(1.0 / rate_per_s, n - 1)
    return pd.DataFrame({
        "request_id": np.arange(n, dtype=np.int64),
        "arrival_s": np.concatenate([[0.0], np.cumsum(gaps)]),
        "prompt_tokens": _lengths(prompt_tokens, "prompt_tokens", prompt_rng, int(n)),
        "output_tokens": _lengths(output_tokens, "output_tokens", output_rng, int(n)),
    })
