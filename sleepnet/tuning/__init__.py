"""Tuning sleep with Optuna: search space, objectives, studies on local workers or a shared database.

Modules, each importing only those before it: ``storage`` (where a study lives),
``space``, ``objectives``, ``study`` (the trials), ``report`` (what they found),
``run`` (``tune``: trials, then the report).
"""

from .objectives import OBJECTIVES, validation_indices, validation_set
from .report import export_trial, write_report
from .run import tune
from .space import SearchSpace, build_space, read_space
from .storage import load, storage_url
from .study import TuneSettings, open_study, run_worker

__all__ = ["OBJECTIVES", "SearchSpace", "TuneSettings", "build_space", "export_trial", "load", "open_study",
           "read_space", "run_worker", "storage_url", "tune", "validation_indices", "validation_set",
           "write_report"]  # fmt: skip
