"""The sweep runner: grid expansion and validation, resume after a real kill, executor equivalence, SLURM, W&B.

The grid is ``experiments/sweeps/smoke.yaml`` (late fusion on AV-MNIST-lite, 2 rates × 2 seeds, 2 training batches,
1 test batch holding every test row). One debug-executor run in this process is the reference; the local and SLURM
executors and a resumed, killed sweep must reproduce its result rows exactly (modulo run_dir, timestamp and the
config hash, which contains the run dir).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mmbench import sweep
from mmbench.errors import MMBenchError, SweepIncompleteError
from mmbench.registry import UnknownNameError
from mmbench.results import RESULT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments/sweeps/smoke.yaml"
PROVENANCE = ("run_dir", "timestamp", "config_hash", "ckpt_path")  # ckpt_path lies inside the run dir


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(JSONARGPARSE_DEPRECATION_WARNINGS="off", WANDB_MODE="offline", WANDB_SILENT="true", **extra)
    return env


def _cmd(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mmbench", "sweep", "--config", str(SMOKE), f"--output={out}", *args]


def _results(sweep_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Rows (minus provenance) of every complete cell; asserts that no incomplete cell holds a results.csv."""
    out: dict[str, list[dict[str, str]]] = {}
    for cell in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        results = cell / sweep.RESULTS
        if not (cell / sweep.COMPLETE).is_file():
            assert not results.exists(), f"{cell.name}: results.csv without COMPLETE"
            continue
        with open(results, newline="") as f:
            rows = list(csv.DictReader(f))
        keys = [(r["eval_protocol"], r["pattern"], r["metric"]) for r in rows]
        assert len(keys) == len(set(keys)), f"{cell.name}: duplicate rows"
        out[cell.name] = [{k: v for k, v in r.items() if k not in PROVENANCE} for r in rows]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The smoke grid run by the debug executor in this process: ``(sweep dir, {cell_id: rows})``."""
    out = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        outcomes = sweep.cli(["--config", str(SMOKE), f"--output={out}", "--executor=debug"])
    assert isinstance(outcomes, list)
    assert [o["status"] for o in outcomes] == ["complete"] * 4
    results = _results(out / "smoke")
    assert len(results) == 4
    return out / "smoke", results


# ------------------------------------------------------------------------------------------------ run dir layout
def test_cell_dir_layout_and_skip_complete(reference, monkeypatch):
    sweep_dir, results = reference
    for cell_id in results:
        cell = sweep_dir / cell_id
        for name in ("config.yaml", "cell.json", "metrics.csv", sweep.RESULTS, sweep.COMPLETE):
            assert (cell / name).is_file(), f"{cell_id}: {name} missing"
        assert not (cell / sweep.PARTIAL_RESULTS).exists()
        assert list((cell / "checkpoints").glob("*.ckpt"))
        marker = json.loads((cell / sweep.COMPLETE).read_text())
        with open(cell / sweep.RESULTS, newline="") as f:
            rows = list(csv.DictReader(f))
        assert marker["cell_id"] == cell_id and marker["rows"] == len(rows) > 0
        assert {r["run_dir"] for r in rows} == {cell.as_posix()}  # the CSV logger wrote into the cell dir itself
        assert {r["seed"] for r in rows} == {cell_id.split("__seed")[1].split("__")[0]}
        assert sweep.cell_status(cell) == "complete"
    assert (sweep_dir / "grid.csv").is_file()
    monkeypatch.chdir(ROOT)
    again = sweep.cli(["--config", str(SMOKE), f"--output={sweep_dir.parent}", "--executor=debug"])
    assert again == []  # every cell complete: nothing runs


def test_results_carry_the_schema_columns(reference):
    _, results = reference
    rows = next(iter(results.values()))
    assert set(rows[0]) == set(RESULT_COLUMNS) - set(PROVENANCE)


# ------------------------------------------------------------------------------------------------------- resume
def _wait_mid_cell(proc: subprocess.Popen, sweep_dir: Path, timeout: float) -> str:
    """Wait until one cell is complete and another is running; return the running cell's id."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        cells = [p for p in sweep_dir.glob("*__*") if p.is_dir()] if sweep_dir.is_dir() else []
        done = [p for p in cells if (p / sweep.COMPLETE).is_file()]
        busy = [p for p in cells if not (p / sweep.COMPLETE).is_file() and (p / sweep.FIT_LOG).is_file()]
        if done and busy:
            return busy[0].name
        time.sleep(0.2)
    raise AssertionError("no cell was running after one completed")


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGKILL", "SIGTERM"]
)
def test_local_executor_resumes_after_kill_and_matches_debug(reference, tmp_path, sig):
    """Kill a local sweep (one cell at a time) mid-cell with a real signal to its process group, resume it with two
    cells at a time: the union of results equals the in-process debug run, with no duplicate and no partial cell."""
    _, expected = reference
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(
            _cmd(tmp_path, "--executor=local", "--parallel=1"),
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the signal reaches the sweep, submitit and the cell
        )
        try:
            killed = _wait_mid_cell(proc, tmp_path / "smoke", timeout=600)
            os.killpg(proc.pid, sig)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(1.0)  # let the group's last processes exit and drop their locks
    killed_dir = tmp_path / "smoke" / killed
    assert not (killed_dir / sweep.COMPLETE).exists() and not (killed_dir / sweep.RESULTS).exists()
    assert sweep.cell_status(killed_dir) in ("incomplete", "failed")
    partial = _results(tmp_path / "smoke")
    assert 1 <= len(partial) < 4

    rerun = subprocess.run(
        _cmd(tmp_path, "--executor=local", "--parallel=2", "--check=false"),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{len(partial)} complete, {4 - len(partial)} to run (local, 2 at a time)" in rerun.stdout
    assert _results(tmp_path / "smoke") == expected
    for cell_id in expected:  # subprocess cells log to fit.log and record where their time went
        marker = json.loads((tmp_path / "smoke" / cell_id / sweep.COMPLETE).read_text())
        assert marker["executor"] == "local" and marker["fit_seconds"] > 0
        assert (tmp_path / "smoke" / cell_id / sweep.FIT_LOG).stat().st_size > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _slurm_binaries() -> bool:
    return all(shutil.which(b) for b in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo"))


class SlurmCluster:
    """A single-node SLURM cluster on loopback (munged + slurmctld + slurmd), all files in a temp dir."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mmslurm-", dir="/tmp"))  # short: it holds a unix socket
        self.procs: list[subprocess.Popen] = []
        self.conf = self.dir / "slurm.conf"

    def start(self) -> str | None:
        """Start the daemons; ``None`` when the node is idle, else why not."""
        d, host = self.dir, socket.gethostname().split(".")[0]
        (d / "state").mkdir()
        (d / "spool").mkdir()
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(
            f"""ClusterName=mmbench
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
        )
        env = self.env()
        munged = [f"--key-file={key}", f"--socket={d}/munge.sock", f"--pid-file={d}/munged.pid"]
        munged += [f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"]
        with open(d / "daemons.log", "w") as out:  # the daemons keep their own copy of the descriptor
            for cmd in (
                ["munged", "-F", "--force", *munged],
                ["slurmctld", "-D", "-c", "-f", str(self.conf)],
                ["slurmd", "-D", "-f", str(self.conf), "-N", host],
            ):
                self.procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
                time.sleep(0.5)
        deadline = time.time() + 60
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False)
            if state.stdout.strip() == "idle":
                return None
            time.sleep(0.5)
        return "the SLURM node did not become idle: " + (d / "daemons.log").read_text()[-1500:]

    def env(self) -> dict[str, str]:
        return _env(SLURM_CONF=str(self.conf))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def slurm_cluster():
    """Start a real single-node SLURM cluster (installing slurm-wlm + munge via .ci/setup-slurm.sh if needed)."""
    if not _slurm_binaries():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("SLURM test: slurm-wlm/munge are not installed and cannot be (needs root and apt-get)")
        try:
            setup = subprocess.run(
                ["bash", str(ROOT / ".ci/setup-slurm.sh")], capture_output=True, text=True, timeout=600, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.skip("SLURM test: .ci/setup-slurm.sh timed out (no package mirror?)")
        if setup.returncode != 0 or not _slurm_binaries():
            pytest.skip(f"SLURM test: .ci/setup-slurm.sh could not install slurm-wlm/munge: {setup.stderr[-500:]}")
    cluster = SlurmCluster()
    try:
        problem = cluster.start()
        if problem is not None:
            print(problem)
            pytest.skip(f"SLURM test: the cluster did not start ({problem.splitlines()[0]})")
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slurm
@pytest.mark.timeout(900)
def test_slurm_executor_matches_debug(reference, slurm_cluster, tmp_path):
    _, expected = reference
    done = subprocess.run(
        _cmd(tmp_path, "--executor=slurm", "--parallel=2", "--num_seeds=1", "--slurm.cpus_per_cell=1"),
        cwd=ROOT,
        env=slurm_cluster.env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "submitted SLURM array job" in done.stdout
    got = _results(tmp_path / "smoke")
    assert len(got) == 2 and got == {k: v for k, v in expected.items() if k in got}
    for cell_id in got:
        assert json.loads((tmp_path / "smoke" / cell_id / sweep.COMPLETE).read_text())["executor"] == "slurm"


# ---------------------------------------------------------------------------------------------------------- W&B
@pytest.mark.timeout(600)
def test_wandb_offline_sweep_one_run_per_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    out = tmp_path / "runs"
    outcomes = sweep.cli(
        ["--config", str(SMOKE), f"--output={out}", "--executor=debug", "--num_seeds=1", "--wandb=true"]
    )
    assert isinstance(outcomes, list) and [o["status"] for o in outcomes] == ["complete"] * 2
    runs = sorted(out.glob("smoke/*/wandb/offline-run-*"))
    assert len(runs) == 2 and len({r.parent.parent for r in runs}) == 2  # one run per cell, inside the cell dir
    for run in runs:
        cell_id = run.parent.parent.name
        blob = b"".join(p.read_bytes() for p in run.glob("*.wandb"))
        assert cell_id.encode() in blob and b"smoke" in blob  # name = cell id, group = sweep name
        assert list(run.glob("files/media/table/results_*.table.json")), "results table not logged"


# ------------------------------------------------------------------------------------------------- validation
def _expand(*args: str, check: bool = True):
    loaded, options = sweep.load_spec(["--config", str(SMOKE), *args])
    return sweep.expand(loaded, num_seeds=options["num_seeds"], check=check)


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_cell_ids_are_readable_stable_and_hash_the_settings(at_root):
    a = _expand(check=False)
    assert [c.cell_id for c in a.cells] == [c.cell_id for c in _expand(check=False).cells]
    assert a.cells[0].cell_id.startswith("avmnist-lite__late_fusion__bernoulli0.3__seed1__")
    assert len({c.cell_id for c in a.cells}) == 4
    assert {c.cell_id for c in _expand("--num_seeds=1", check=False).cells} < {c.cell_id for c in a.cells}
    changed = _expand("--trainer", '{"max_epochs": 2, "accelerator": "cpu"}', check=False)
    assert not {c.cell_id for c in changed.cells} & {c.cell_id for c in a.cells}


def test_dry_run_prints_grid_with_status(at_root, tmp_path, capsys):
    grid = sweep.cli(["--config", str(SMOKE), f"--output={tmp_path}", "--dry-run", "--check=false"])
    assert isinstance(grid, sweep.Grid)
    text = capsys.readouterr().out
    assert "4 cells" in text and text.count("pending") >= 4
    first = grid.cells[0].cell_dir
    first.mkdir(parents=True)
    (first / "fit.log").write_text("partial")
    assert sweep.cell_status(first) == "incomplete"
    lock = sweep.CellLock(first)
    assert lock.acquire()
    try:
        assert sweep.cell_status(first) == "running"
        assert not sweep.CellLock(first).acquire()  # a second worker would skip the cell ("busy")
    finally:
        lock.release()


def test_unknown_method_suggests(at_root):
    with pytest.raises(UnknownNameError, match=r"unknown method 'late_fusoin'; did you mean 'late_fusion'"):
        _expand("--methods=[late_fusoin]", check=False)
    with pytest.raises(UnknownNameError, match=r"exclude_methods: unknown method 'shaspecc'; did you mean"):
        _expand("--methods=all", "--exclude_methods=[shaspecc]", check=False)


def test_unknown_dataset_class_and_missing_yaml(at_root, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  class_path: AVMNISTDataModul\n")
    with pytest.raises(MMBenchError, match=r"not available: unknown dataset class 'AVMNISTDataModul'; did you mean"):
        _expand(f"--datasets=[{bad}]", check=False)
    with pytest.raises(MMBenchError, match=r"not available: .*nope\.yaml does not exist"):
        _expand("--datasets=[experiments/data/nope.yaml]", check=False)
    # a dry-run lists such cells instead (sweeps over data modules that are still being written)
    loaded, _ = sweep.load_spec(["--config", str(SMOKE), "--datasets=[experiments/data/nope.yaml]"])
    grid = sweep.expand(loaded, allow_unavailable=True)
    assert len(grid.cells) == 4 and all(c.note for c in grid.cells)
    assert "unavailable" in sweep.format_grid(grid)


def test_incompatible_method_dataset_fails_before_running(at_root, monkeypatch, tmp_path):
    from mmbench.methods import LateFusion
    from mmbench.types import Task

    monkeypatch.setattr(LateFusion, "supported_tasks", (Task.SEGMENTATION,))
    with pytest.raises(MMBenchError, match=r"method 'late_fusion' cannot run on dataset 'avmnist-lite'.*segmentation"):
        _expand(check=False)
    grid = _expand("--methods=all", check=False)  # `all` leaves it out and says so
    assert "late_fusion" not in {c.method for c in grid.cells} and any("late_fusion" in n for n in grid.notes)
    assert not (tmp_path / "smoke").exists()


def test_instantiation_errors_are_reported_per_pair(at_root):
    with pytest.raises(MMBenchError, match=r"'unimodal' × dataset 'avmnist-lite' cannot be instantiated.*flair"):
        _expand('--methods=[{"name": "unimodal", "overrides": {"modality": "flair"}}]')
    with pytest.raises(MMBenchError, match=r"cannot be instantiated.*hidden_dimm"):
        _expand('--methods=[{"name": "late_fusion", "overrides": {"hidden_dimm": 3}}]')


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--seeds=[]"], r"empty grid: `seeds` is empty"),
        (["--methods=[]"], r"empty grid: no methods"),
        (["--datasets=[]"], r"empty grid: `datasets` is empty"),
        (["--rates=[1.5]"], r"rates: rate must be in \[0, 1\]"),
        (['--trainer={"logger": false}'], r"trainer.logger is set by the sweep"),
        (["--name=a b"], r"sweep name 'a b' must be"),
        (["--methodz=all"], r"sweep spec( \S+)?: .*methodz"),
        (
            ['--missing=[{"class_path": "FixedPattern", "init_args": {"observed": ["flair"]}}]'],
            r"training missingness 'fixed-flair' does not fit dataset 'avmnist-lite'",
        ),
    ],
    ids=["no-seeds", "no-methods", "no-datasets", "bad-rate", "owned-logger", "bad-name", "unknown-key", "bad-spec"],
)
def test_spec_errors_are_clear(at_root, args, match):
    with pytest.raises(MMBenchError, match=match):
        _expand(*args, check=False)


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def test_validate_results_rejects_bad_files(tmp_path):
    path = tmp_path / "results.csv"
    row = {c: "" for c in RESULT_COLUMNS} | {"eval_protocol": "all_patterns", "pattern": "all", "seed": "1"}
    _write_rows(path, [row])
    with pytest.raises(MMBenchError, match="empty metric"):
        sweep.validate_results(path, {})
    _write_rows(path, [row | {"metric": "acc", "value": "0.5", "method": "late_fusion"}])
    assert sweep.validate_results(path, {"seed": "1", "method": "late_fusion"}) == 1
    with pytest.raises(MMBenchError, match="seed is '1', expected '2'"):
        sweep.validate_results(path, {"seed": "2"})
    _write_rows(path, [row | {"metric": "acc", "value": "high"}])
    with pytest.raises(MMBenchError, match="value 'high' is not a number"):
        sweep.validate_results(path, {})
    _write_rows(path, [])
    with pytest.raises(MMBenchError, match="no result rows"):
        sweep.validate_results(path, {})
    path.write_text("dataset,value\navmnist,1\n")
    with pytest.raises(MMBenchError, match=r"not results\.RESULT_COLUMNS"):
        sweep.validate_results(path, {})


def test_failed_cell_is_marked_and_reported(at_root, tmp_path):
    args = ["--config", str(SMOKE), f"--output={tmp_path}", "--executor=debug", "--num_seeds=1", "--rates=[0.3]"]
    with pytest.raises(SweepIncompleteError, match=r"1 cells, 1 failed"):
        sweep.cli([*args, "--check=false", "--", "--model.init_args.hidden_dimm=3"])
    (cell,) = [p for p in (tmp_path / "smoke").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert sweep.cell_status(cell) == "failed" and not (cell / sweep.RESULTS).exists()
    assert "fit failed" in json.loads((cell / sweep.FAILED).read_text())["error"]
    with pytest.raises(MMBenchError, match=r"cannot be instantiated.*hidden_dimm"):  # the default check says why
        sweep.cli([*args, "--", "--model.init_args.hidden_dimm=3"])
