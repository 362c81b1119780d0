"""Hardware model: SimPy components and their configs."""
