"""Test-suite settings: hypothesis runs derandomised so every run checks the same examples.

Set ``HYPOTHESIS_PROFILE=explore`` to draw fresh random examples instead.
"""

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
