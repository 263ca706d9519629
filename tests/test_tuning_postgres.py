"""Distributed tuning on a real PostgreSQL server: two workers share one study, and a worker killed
mid-trial leaves its trial failed (by heartbeat) and retried by the other.

The fixture starts PostgreSQL from the Debian package's binaries on a loopback port, in a
temporary cluster (trust authentication, fsync off). Where no server binaries exist, or the
server cannot start, the tests are skipped with the reason.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from sleepnet.tuning.report import load
from tests.conftest import run_cli


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if not (initdb and postgres):
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="sleepnet-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the package's user
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()
    init = subprocess.run([*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                          capture_output=True, text=True)  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {init.stderr.strip().splitlines()[-1:]}")
    server = subprocess.Popen([*as_user, postgres, "-D", data, "-p", str(port), "-k", root, "-c",
                               "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.time() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                shutil.rmtree(root, ignore_errors=True)
                pytest.skip(f"PostgreSQL did not start: {(server.stderr.read() or '').strip()[-300:]}")
            time.sleep(0.2)
    time.sleep(0.5)  # accepting connections after the socket opens
    yield url
    # fast shutdown: SIGINT to the postmaster itself (its pid heads postmaster.pid); runuser does not
    # pass SIGINT on, and the wait below then ran out (20 s) before a kill
    try:
        os.kill(int(open(os.path.join(data, "postmaster.pid")).readline()), signal.SIGINT)
    except (OSError, ValueError):
        server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    shutil.rmtree(root, ignore_errors=True)


def _worker(model, url, study, trials, out, space):
    cmd = [sys.executable, "-m", "sleepnet", "tune", str(model), "--storage", url, "--study", study,
           "--trials", str(trials), "--validation", "400", "--population", "4", "--heartbeat", "1",
           "--grace", "4", "--space", str(space), "-o", str(out), "-q"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_inside_a_trial(a, url: str, tag: str) -> int | None:
    """Kill worker ``a`` (``tag``) while one of its trials runs; that trial's number (None if none was
    caught in 120 s). The worker is frozen first, so that the trial cannot end between seeing it running
    and the kill (a kill just after the trial ended would leave nothing to test)."""
    deadline = time.time() + 120
    while time.time() < deadline and a.poll() is None:
        for t in load("shared", url).get_trials(deepcopy=False):
            # running, and past drawing its parameters (it records its config, then sleeps)
            if t.state.name != "RUNNING" or t.user_attrs.get("worker") != tag or "config" not in t.user_attrs:
                continue
            a.send_signal(signal.SIGSTOP)
            time.sleep(0.5)  # whatever it had already sent reaches the server
            if {x.number: x for x in load("shared", url).trials}[t.number].state.name == "RUNNING":
                a.kill()  # frozen mid-trial: killed there
                a.wait()
                return t.number
            a.send_signal(signal.SIGCONT)  # the trial ended before the freeze: catch a later one
            break
        time.sleep(0.05)
    return None


def test_two_workers_share_one_study_and_a_killed_trial_is_failed_and_retried(patches_model, postgres_url,
                                                                               tmp_path):  # fmt: skip
    trials = 16
    space = tmp_path / "space.toml"  # long sleeps (about a second), so that a trial can be caught running
    space.write_text("[space]\nT = { low = 250000, high = 400000 }\ninput_mode = ['mean']\n")
    # the first worker creates the study (and its baseline); the second joins it
    a = _worker(patches_model, postgres_url, "shared", trials, tmp_path / "a", space)
    b = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                study = load("shared", postgres_url)
                if "baseline" in study.user_attrs:
                    break
            except Exception:
                pass
            assert a.poll() is None, a.stderr.read()
            assert time.time() < deadline, "the first worker never created the study"
            time.sleep(0.3)
        b = _worker(patches_model, postgres_url, "shared", trials, tmp_path / "b", space)

        tag = f"{socket.gethostname()}:{a.pid}"
        killed = _kill_inside_a_trial(a, postgres_url, tag)
        assert killed is not None, "could not catch worker a inside a trial"

        out, err = b.communicate(timeout=600)
        assert b.returncode == 0, err
        study = load("shared", postgres_url)
        numbers = [t.number for t in study.trials]
        assert numbers == list(range(len(numbers)))  # every trial recorded once
        by_number = {t.number: t for t in study.trials}
        assert by_number[killed].state.name == "FAIL"  # failed by the heartbeat, not left running
        retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed]
        assert len(retries) == 1 and retries[0].state.name in ("COMPLETE", "PRUNED")
        assert retries[0].params == by_number[killed].params  # retried with the same parameters
        assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
        finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
        assert trials <= len(finished) <= trials + 1  # at most one extra: the workers stop independently
        assert by_number[killed].user_attrs["worker"] == tag
        b_tag = f"{socket.gethostname()}:{b.pid}"
        assert b_tag in {t.user_attrs["worker"] for t in finished} <= {tag, b_tag}  # b ran the rest
        assert (tmp_path / "b" / "report.md").is_file()
    finally:  # a failed assertion leaves no worker behind, frozen or running
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_unreachable_database_is_one_clear_line(patches_model, tmp_path):
    port = _free_port()  # nothing listens there
    proc = run_cli("tune", patches_model, "--storage", f"postgresql://postgres@127.0.0.1:{port}/x",
                   "-o", tmp_path / "t")  # fmt: skip
    assert proc.returncode == 1 and not (tmp_path / "t").exists()  # the machine's fault: exit 1, no folder
    assert proc.stderr.strip().startswith("sleepnet: error: cannot open the study storage postgresql")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_several_processes_create_one_server_storage_at_once(postgres_url):
    """As for SQLite (``test_tuning.py``): 4 processes released together onto a new database each
    time create its schema once, without colliding (array tasks starting on a fresh server)."""
    import sqlalchemy

    from tests.test_tuning import open_at_once

    engine = sqlalchemy.create_engine("postgresql+psycopg://" + postgres_url.split("://", 1)[1],
                                      isolation_level="AUTOCOMMIT")  # fmt: skip
    with engine.connect() as conn:
        for k in range(3):
            conn.execute(sqlalchemy.text(f"CREATE DATABASE race{k}"))
    engine.dispose()
    open_at_once([postgres_url.rsplit("/", 1)[0] + f"/race{k}" for k in range(3)])
