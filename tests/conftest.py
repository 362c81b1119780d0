"""Test-suite settings: hypothesis runs derandomised so every run checks the same examples, and the
persistent op-cost cache is off (and pointed at a temporary directory).

Set ``HYPOTHESIS_PROFILE=explore`` to draw fresh random examples instead.
"""

import importlib.util
import json
import os

import pytest

# Without the package's dependencies every test module fails to import: say how to install them, once.
_MISSING = [m for m in ("simpy", "numpy", "pandas", "networkx", "yaml", "tqdm", "platformdirs", "hypothesis")
            if importlib.util.find_spec(m) is None]
if _MISSING:
    pytest.exit(f"missing {', '.join(_MISSING)}: install the package and its test dependencies first, "
                "with pip install -e '.[test]' (the README's second command)", returncode=4)

from hypothesis import settings  # noqa: E402

from mixpe_sys import load_design  # noqa: E402
from mixpe_sys.sim.engine import CostCache  # noqa: E402
from mixpe_sys.workload.models import load_model  # noqa: E402

settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def _no_persistent_cost_cache(tmp_path_factory):
    """Runs use no persistent op-cost cache unless a test turns it on (tests/test_cost_store.py does, in
    its own tmp_path), so no test touches the user's cache or depends on which tests ran before it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIXPE_SIM_NO_CACHE", "1")
        mp.setenv("MIXPE_SIM_CACHE_DIR", str(tmp_path_factory.mktemp("op-cost-cache")))
        yield


# Serving fixtures: a tiny Llama-like model, the default design and one shared exact cost cache.
TINY_CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 688,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
               "max_position_embeddings": 4096}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "config.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return load_model(path)


@pytest.fixture(scope="session")
def design():
    return load_design("mixpe-w4a8")


@pytest.fixture(scope="session")
def cache(design):
    """One op cost cache for every replay on the design (costs are exact, so sharing changes nothing)."""
    return CostCache(design)
