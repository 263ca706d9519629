"""Tuning sleep with Optuna: search space, objectives, studies on local workers or a shared database."""

from .objectives import OBJECTIVES, validation_indices, validation_set
from .report import export_trial, write_report
from .space import SearchSpace, build_space, read_space
from .study import TuneSettings, open_study, run_worker, tune

__all__ = ["OBJECTIVES", "SearchSpace", "TuneSettings", "build_space", "export_trial", "open_study",
           "read_space", "run_worker", "tune", "validation_indices", "validation_set", "write_report"]
