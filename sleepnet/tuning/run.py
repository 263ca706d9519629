"""``tune``: run (or resume) a study with local worker processes, then write its report.

The top of the tuning package: it imports ``study`` (the trials) and
``report`` (what they found), and nothing imports it but the package itself.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .. import __version__
from ..errors import SleepnetError, UsageError
from ..fsio import MARK, atomic_write, check_output
from ..state import optuna_quiet
from ..threads import cores
from .report import write_report
from .study import STUDY_NAME, Tuner, TuneSettings, open_study, run_worker


def _worker_main(args: tuple) -> int:
    return run_worker(*args)


@optuna_quiet()
def tune(settings: TuneSettings, out: Path, n_trials: int, *, workers: int = 1, storage: str | None = None,
         study_name: str = STUDY_NAME, heartbeat: int = 10, grace: int = 60,
         data_dir: str | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Run (or resume) a study to ``n_trials`` finished trials with ``workers`` local processes,
    then write its report into ``out``.

    Each worker runs on ``cores // workers`` threads; with one worker, it runs in this process and
    the thread counts are the caller's again once it is done."""
    if n_trials < 1 or workers < 1:
        raise UsageError("--trials and --workers must be at least 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SleepnetError(f"{out} is a file, not a study folder")
    check_output(out, overwrite=True, inputs=[settings.model])  # a study folder of its own is resumed
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    t0 = time.perf_counter()
    try:  # decided by the mkdir itself: of two commands on a new -o, one makes it, the other joins
        out.mkdir(parents=True)
        new = True
    except FileExistsError:
        new = False  # an existing study folder is resumed (or joined)
    try:
        # one worker runs here and shares the model and data it loads with the baseline
        tuner = Tuner(settings, data_dir) if workers == 1 else None
        open_study(settings, url, study_name, heartbeat=heartbeat, grace=grace, data_dir=data_dir,
                   tuner=tuner)  # fmt: skip
    except BaseException:
        if new:  # refused, or stopped, before the study was whole: no folder left behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    if new:
        atomic_write(out / MARK, json.dumps({"sleepnet": __version__}) + "\n")
    threads = max(1, cores() // workers)
    args = [(settings, url, study_name, n_trials, w, threads, heartbeat, grace, data_dir, progress)
            for w in range(workers)]  # fmt: skip
    if workers == 1:
        run_worker(*args[0], tuner=tuner)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        try:
            list(pool.map(_worker_main, args))
        except BaseException:  # Ctrl-C, SIGTERM to this process alone, a worker's error: stop them all
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()  # a trial cut short is failed by its heartbeat and retried on resume
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    elapsed = time.perf_counter() - t0
    return write_report(study_name, url, out, extra={"wall_s": elapsed, "workers": workers})
