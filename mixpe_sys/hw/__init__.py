"""Hardware model: SimPy components, their configs and their timing rules."""

from . import pe  # noqa: F401  (registers the built-in PE types)
