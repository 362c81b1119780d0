"""Design-space exploration: sweeps over design points, Pareto fronts of fidelity versus efficiency.

- :func:`load_sweep` / :class:`SweepConfig`: a sweep YAML (base design, grid or
  explicit points over dotted design paths, workloads).
- :func:`expand_points`: the sweep's points, each with a stable id.
- :func:`run_sweep`: run the points not yet in ``DIR/results.csv``, in-process
  or on a Dask ``distributed`` cluster (local or given by its scheduler address).
- :func:`evaluate_point`: one point -> one flat result row (status ok/error).
- :func:`read_results`, :func:`pareto`, :func:`plot_pareto`: analysis.
"""

from .evaluate import design_for_point, evaluate_point, quant_snr_db, result_columns
from .pareto import pareto, pareto_mask, plot_pareto
from .runner import SweepRun, run_sweep
from .store import ResultsStore, read_results
from .sweep import SnrConfig, SweepConfig, SweepPoint, WorkloadConfig, expand_points, load_sweep, point_id

__all__ = ["SweepConfig", "WorkloadConfig", "SnrConfig", "SweepPoint", "load_sweep", "expand_points", "point_id",
           "run_sweep", "SweepRun", "evaluate_point", "design_for_point", "quant_snr_db", "result_columns",
           "ResultsStore", "read_results", "pareto", "pareto_mask", "plot_pareto"]
