"""Simulation drivers: one GEMM, a whole model, a serving trace."""
