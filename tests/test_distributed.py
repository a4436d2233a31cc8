"""fastconv.distributed: data-parallel steps over MPI equal one process's step on the whole batch.

Tests that need several processes take the ``ranks`` fixture: it runs a script under ``mpiexec -n N`` and is
skipped, with the reason, where mpiexec or mpi4py is missing (``.ci/run`` installs both).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from fastconv import distributed


def _mpi_missing():
    if shutil.which("mpiexec") is None:
        return "mpiexec not found (apt-get install openmpi-bin libopenmpi-dev)"
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py not installed (pip install 'fastconv[mpi]')"
    return None


@pytest.fixture
def ranks():
    """``run(n, script, timeout)``: the script's CompletedProcess under ``mpiexec -n n`` (a hang fails)."""
    reason = _mpi_missing()
    if reason:
        pytest.skip(reason)

    def run(n, script, timeout=120, cwd=None, popen=False):
        """``script``: Python source (run with -c), or a list of arguments of the Python interpreter (a
        module to run). ``popen``: start it and return the Popen instead of waiting."""
        env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
        argv = ["-c", textwrap.dedent(script)] if isinstance(script, str) else list(script)
        cmd = ["mpiexec", "-n", str(n), sys.executable, *argv]
        if popen:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                    cwd=cwd)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False,
                                  cwd=cwd)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"mpiexec -n {n} hung past {timeout} s: {exc.stdout!r} {exc.stderr!r}")

    return run


# ======================================================================================================
# equivalence: 2 ranks x half batch == 1 process x whole batch

EQUIVALENCE = """
import numpy as np, fastconv
from fastconv import distributed as dist
from fastconv.models import build
from fastconv.optimizer import SGD, Adam

dist.init(timeout=60)
r, p = dist.rank(), dist.size()
dtype = np.{dtype}
rng = np.random.default_rng(0)  # the same data on every rank
x = rng.standard_normal((100, 1, 28, 28)).astype(dtype)
t = rng.integers(0, 10, 100)
for name in ("SGD", "Adam"):
    make = {{"SGD": lambda: SGD(lr=0.05), "Adam": lambda: Adam(lr=1e-3)}}[name]
    net = build("lenet", dtype=dtype, seed=1 + r)  # different on each rank: broadcast_params equalises
    ref = build("lenet", dtype=dtype, seed=1)
    dist.broadcast_params(net.params)
    net._bind_params()
    opt, ref_opt = dist.DistributedOptimizer(make()), make()
    for step in range(3):
        idx = np.arange(step * 30, step * 30 + 100) % 100
        part = dist.shard(idx)
        opt.update(net.params, net.gradient(x[part], t[part]))
        ref_opt.update(ref.params, ref.gradient(x[idx], t[idx]))
        digests = dist.allgather([net.params[k].tobytes() for k in sorted(net.params)])
        assert all(d == digests[0] for d in digests), f"{{name}} step {{step}}: ranks differ"
        for k in ref.params:
            np.testing.assert_allclose(net.params[k], ref.params[k], rtol={rtol}, atol={atol},
                                       err_msg=f"{{name}} step {{step}} {{k}}")
    if r == 0:
        print(name, "equal", flush=True)
"""


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-12, 1e-14), ("float32", 2e-5, 2e-6)])
def test_two_ranks_take_the_single_process_step(ranks, dtype, rtol, atol):
    run = ranks(2, EQUIVALENCE.format(dtype=dtype, rtol=rtol, atol=atol))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["SGD", "equal", "Adam", "equal"], run.stdout


def test_uneven_shards_weighted(ranks):
    """A batch of 101 over 2 ranks (51 + 50): weighted by shard size, the step is the whole batch's."""
    script = """
    import numpy as np
    from fastconv import distributed as dist
    from fastconv.models import build
    from fastconv.optimizer import SGD
    r = dist.rank()
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((101, 1, 28, 28)), rng.integers(0, 10, 101)
    net, ref = build("lenet", dtype=np.float64, seed=1), build("lenet", dtype=np.float64, seed=1)
    opt, ref_opt = dist.DistributedOptimizer(SGD(lr=0.1)), SGD(lr=0.1)
    idx = np.arange(101)
    part = dist.shard(idx)
    opt.update(net.params, net.gradient(x[part], t[part]), weight=len(part) / len(idx))
    ref_opt.update(ref.params, ref.gradient(x, t))
    for k in ref.params:
        np.testing.assert_allclose(net.params[k], ref.params[k], rtol=1e-12, atol=1e-14, err_msg=k)
    sizes = dist.allgather(len(part))
    if r == 0:  # one process prints: two writing to mpiexec's stdout could interleave
        print(*sizes, "ok", flush=True)
    """
    run = ranks(2, script)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["51", "50", "ok"], run.stdout


def test_broadcast_optimizer_state(ranks):
    script = """
    import numpy as np
    from fastconv import distributed as dist
    from fastconv.optimizer import Adam
    r = dist.rank()
    params = {"W": np.zeros(3)}
    opt = Adam(lr=0.1 * (r + 1))
    for _ in range(r + 1):
        opt.update(params, {"W": np.full(3, r + 1.0)})
    dist.broadcast_optimizer(opt)
    states = dist.allgather((opt.lr, opt.iter, opt.m["W"].tobytes(), opt.v["W"].tobytes()))
    assert all(s == states[0] for s in states), states
    assert opt.lr == 0.1 and opt.iter == 1
    print("ok", flush=True)
    """
    run = ranks(2, script)
    assert run.returncode == 0, run.stdout + run.stderr


# ======================================================================================================
# failure ends the job


def test_a_failing_rank_ends_the_job(ranks):
    script = """
    import time, numpy as np
    from fastconv import distributed as dist
    dist.init(timeout=60)
    if dist.rank() == 1:
        time.sleep(0.5)
        raise RuntimeError("rank one broke mid-epoch")
    dist.allreduce_mean({"g": np.ones(4)})  # rank 0 waits here for a partner that never comes
    print("rank 0 passed the allreduce", flush=True)
    """
    t = time.perf_counter()
    run = ranks(2, script, timeout=60)
    elapsed = time.perf_counter() - t
    assert run.returncode != 0
    assert "rank 1/2: uncaught exception" in run.stderr and "rank one broke mid-epoch" in run.stderr
    assert "passed the allreduce" not in run.stdout
    assert elapsed < 20, elapsed


def test_a_stalled_collective_times_out(ranks):
    script = """
    import time, numpy as np
    from fastconv import distributed as dist
    dist.init(timeout=2)
    if dist.rank() == 1:
        time.sleep(60)  # stuck without an exception
    dist.barrier()
    """
    t = time.perf_counter()
    run = ranks(2, script, timeout=60)
    elapsed = time.perf_counter() - t
    assert run.returncode != 0
    assert "barrier did not complete within 2 s" in run.stderr
    assert elapsed < 30, elapsed


# ======================================================================================================
# one process, no MPI needed


@pytest.mark.parametrize("n, p", [(100, 2), (101, 2), (7, 3), (2, 4), (0, 2)])
def test_shard_partitions_the_batch(n, p):
    idx = np.arange(n) * 3
    parts = [distributed.shard(idx, r, p) for r in range(p)]
    assert np.array_equal(np.concatenate(parts), idx)
    sizes = [len(x) for x in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_missing_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(distributed._state, "MPI", None)
    monkeypatch.setitem(distributed._state, "comm", None)
    with pytest.raises(ImportError, match=r"apt-get install openmpi-bin libopenmpi-dev.*fastconv\[mpi\]"):
        distributed.rank()


def test_bad_arguments():
    with pytest.raises(ValueError, match="timeout: expected a number of seconds > 0, got 0"):
        distributed.init(timeout=0)
    with pytest.raises(TypeError, match="optimizer: expected an object with update"):
        distributed.DistributedOptimizer(object())


def test_two_hosts_over_tcp(ranks):
    """bench/distributed_two_hosts.sh: two network namespaces joined by veth play two machines; the job's
    gradients cross the link over TCP (root only: it creates namespaces)."""
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "distributed_two_hosts.sh"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns) to make the two hosts")
    probe = subprocess.run(["ip", "netns", "add", f"fcprobe{os.getpid()}"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"ip netns add refused here: {probe.stderr.decode().strip()}")
    subprocess.run(["ip", "netns", "del", f"fcprobe{os.getpid()}"], check=True)
    run = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=180, check=False,
                         env=dict(os.environ, PYTHON=sys.executable))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["rank 0/2", "rank 1/2"], run.stdout
    assert all("mean 1.5 (expected 1.5)" in line for line in lines[:2]), run.stdout
    sent = int(lines[-1].rsplit(" ", 1)[1])
    assert sent >= 6 * (16 << 20), run.stdout  # six 16 MiB allreduces crossed the veth link


# ======================================================================================================
# the Trainer and `fastconv train` on several ranks


@pytest.fixture(scope="module")
def have_data():
    """Real Fashion-MNIST images (the CLI tests train on a few hundred of them)."""
    import fastconv.datasets
    from conftest import no_real_data

    try:
        fastconv.datasets.load_fashion_mnist(flatten=False, download=False)
    except FileNotFoundError as exc:
        no_real_data(exc)


def _train_argv(out, *extra):
    """``python -m fastconv train`` on 301 images of Fashion-MNIST, LeNet (no dropout), float64."""
    return ["-m", "fastconv", "train", "--model", "lenet", "--train-size", "301", "--test-size", "120",
            "--eval-samples", "120", "--dtype", "float64", "--seed", "0", "--no-progress", "--out", str(out),
            *extra]


def _one_process(argv, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in distributed._LAUNCHER_SIZE_VARS:
        env.pop(name, None)
    run = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env=env,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def _params(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _history(out):

    with open(out / "history.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize(
    "two_ranks, one_process",
    [
        # a global batch of 45 (23 + 22 per rank) and a last batch of 31 (16 + 15): weighted every step
        (["--epochs", "1", "--batch-size", "45"], ["--epochs", "1", "--batch-size", "45"]),
        # 25 per rank: the global batch is 50
        (["--epochs", "1", "--batch-size", "25", "--batch-per-rank"],
         ["--epochs", "1", "--batch-size", "50"]),
    ],
    ids=["global-batch-uneven", "batch-per-rank"],
)
def test_train_command_on_two_ranks_equals_one_process(ranks, have_data, tmp_path, two_ranks, one_process):
    """`mpiexec -n 2 fastconv train`: one params file, one history, one checkpoint, the accuracy printed once;
    its parameters, per-step losses and accuracies are one process's on the same global batches."""
    run = ranks(2, _train_argv(tmp_path / "two", *two_ranks), timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(os.listdir(tmp_path / "two")) == ["checkpoints", "curves.png", "history.json", "params.npz"]
    assert os.listdir(tmp_path / "two" / "checkpoints") == ["epoch-0001.npz"]
    lines = run.stdout.splitlines()
    assert sum(line.startswith("test accuracy") for line in lines) == 1, run.stdout
    assert sum(line.startswith("final test accuracy") for line in lines) == 1, run.stdout
    assert sum(line.startswith("epoch 1/1:") for line in lines) == 1, run.stdout
    assert "2 ranks x 1 thread" in lines[0], lines[0]
    assert run.stderr == "", run.stderr

    _one_process(_train_argv(tmp_path / "one", *one_process))
    two, one = _history(tmp_path / "two"), _history(tmp_path / "one")
    assert two["ranks"] == 2 and one["ranks"] == 1 and two["status"] == "finished"
    assert two["mini_batch_size"] == one["mini_batch_size"] and two["iter_per_epoch"] == one["iter_per_epoch"]
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-10)
    for key in ("test_acc", "train_acc", "final_test_acc", "epoch_running_train_acc"):
        assert two[key] == one[key], key
    for key in ("test_loss", "train_eval_loss", "final_test_loss"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-10, err_msg=key)
    p2, p1 = _params(tmp_path / "two" / "params.npz"), _params(tmp_path / "one" / "params.npz")
    for k in p1:
        np.testing.assert_allclose(p2[k], p1[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_train_command_resume_continues_identically(ranks, have_data, tmp_path):
    """Two epochs at once equal one epoch, then --resume for the second (rank 0 reads the checkpoint and sends
    it; the Trainer checks after each epoch that the ranks' parameters are bit-identical)."""
    run = ranks(2, _train_argv(tmp_path / "straight", "--epochs", "2", "--batch-size", "50"), timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    run = ranks(2, _train_argv(tmp_path / "split", "--epochs", "1", "--batch-size", "50"), timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    run = ranks(2, ["-m", "fastconv", "train", "--out", str(tmp_path / "split"), "--resume", "--epochs", "2",
                    "--no-progress"], timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("resumed from") == 1, run.stdout
    a, b = _params(tmp_path / "straight" / "params.npz"), _params(tmp_path / "split" / "params.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert _history(tmp_path / "straight")["train_loss"] == _history(tmp_path / "split")["train_loss"]


def test_train_command_resume_after_a_kill(ranks, have_data, tmp_path):
    """Ctrl-C on mpiexec (SIGINT; Open MPI's mpiexec then sends SIGTERM to the ranks and kills them) after a
    checkpoint in the middle of an epoch ends the job; --resume ends with the parameters of a run that was
    never stopped."""
    import signal

    # 2 x 600 steps: the first mid-epoch checkpoint (after 0.12 s) comes long before the end, so SIGINT always
    # lands mid-run (1500 images finished first once on an idle machine, before the signal took effect)
    common = ["--epochs", "2", "--batch-size", "10", "--train-size", "6000", "--checkpoint-every", "0.002"]
    job = ranks(2, _train_argv(tmp_path / "killed", *common), popen=True)  # the later --train-size wins
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if ckpts.is_dir() and any("-step-" in name for name in os.listdir(ckpts)):
            break
        time.sleep(0.02)
    job.send_signal(signal.SIGINT)
    try:
        job.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail("mpiexec did not end within 30 s of SIGINT")
    assert job.returncode != 0
    assert _history(tmp_path / "killed")["status"] == "running"  # killed: no status written after the start
    assert not (tmp_path / "killed" / "params.npz").exists()
    resume = ["-m", "fastconv", "train", "--out", str(tmp_path / "killed"), "--resume", "--no-progress"]
    run = ranks(2, resume, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "-step-" in run.stdout.split("resumed from", 1)[1].splitlines()[0], run.stdout
    run = ranks(2, _train_argv(tmp_path / "whole", *common), timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    a, b = _params(tmp_path / "whole" / "params.npz"), _params(tmp_path / "killed" / "params.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


TRAINER = """
import os, signal, sys, time
import numpy as np
from fastconv import distributed as dist
from fastconv.models import build
from fastconv.trainer import Trainer

dist.init(timeout=60)
r = dist.rank()
rng = np.random.default_rng(0)
x, t = rng.standard_normal((130, 1, 28, 28)), rng.integers(0, 10, 130)
x_test, t_test = x[:40], t[:40]
ckpt = sys.argv[1]

def trainer(**kw):
    net = build("lenet", dtype=np.float64, seed=1 + r)  # rank 0's weights win
    return Trainer(net, x, t, x_test, t_test, epochs=2, mini_batch_size=20, optimizer="adam",
                   optimizer_param={{"lr": 1e-3}}, verbose=False, progress=False, distributed=True, seed=r,
                   checkpoint_interval=None, **kw)

def digest(tr):
    return dist.allgather([tr.network.params[k].tobytes() for k in sorted(tr.network.params)])
{body}
"""


def test_trainer_resumes_mid_epoch_on_every_rank(ranks, tmp_path):
    """A checkpoint after 3 steps of epoch 2, then a new Trainer resumes from it: every rank ends with the
    parameters of the run never stopped (each rank starts from other weights and seeds: rank 0's win)."""
    body = """
whole = trainer()
whole.train()
a = trainer(checkpoint_dir=ckpt)
for _ in range(a.iter_per_epoch + 3):
    a.train_step()
a.save_checkpoint()
b = trainer(checkpoint_dir=ckpt, resume=True)
assert b.current_iter == a.iter_per_epoch + 3
b.train()
got, want = digest(b), digest(whole)
assert got[0] == got[1] == want[0] == want[1], "ranks or runs differ"
assert b.history["train_loss"] == whole.history["train_loss"]
if r == 0:
    print(sorted(os.listdir(ckpt)), b.final_test_acc == whole.final_test_acc, flush=True)
"""
    run = ranks(2, [*("-c", TRAINER.format(body=body)), str(tmp_path / "ck")])
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["['epoch-0001.npz',", "'epoch-0002.npz']", "True"], run.stdout


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(ranks, tmp_path):
    """SIGINT reaching rank 1 alone: both ranks finish the same step, rank 0 writes one checkpoint, both raise
    KeyboardInterrupt with ``interrupted`` set."""
    body = """
tr = trainer(checkpoint_dir=ckpt)
net = tr.network
gradient = net.gradient
calls = []

def gradient_then_signal(xb, tb):
    calls.append(1)
    if r == 1 and len(calls) == 4:
        os.kill(os.getpid(), signal.SIGINT)
    return gradient(xb, tb)

net.gradient = gradient_then_signal
try:
    tr.train()
except KeyboardInterrupt:
    pass
states = dist.allgather((tr.interrupted, tr.current_iter))
if r == 0:
    print(states, sorted(os.listdir(ckpt)), flush=True)
"""
    run = ranks(2, [*("-c", TRAINER.format(body=body)), str(tmp_path / "ck")])
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "[(True, 4), (True, 4)] ['epoch-0000-step-000004.npz']", run.stdout


def test_a_rank_raising_mid_epoch_ends_the_trainer_job(ranks, tmp_path):
    body = """
tr = trainer()
gradient = tr.network.gradient
calls = []

def failing(xb, tb):
    calls.append(1)
    if r == 1 and len(calls) == 3:
        raise RuntimeError("rank one's gradient broke at step 3")
    return gradient(xb, tb)

tr.network.gradient = failing
tr.train()
print("finished", flush=True)
"""
    t0 = time.perf_counter()
    run = ranks(2, [*("-c", TRAINER.format(body=body)), str(tmp_path / "ck")], timeout=60)
    elapsed = time.perf_counter() - t0
    assert run.returncode != 0
    assert "rank 1/2: uncaught exception" in run.stderr, run.stderr
    assert "rank one's gradient broke at step 3" in run.stderr
    assert "finished" not in run.stdout
    assert elapsed < 30, elapsed


def test_train_command_error_on_one_rank_ends_the_job(ranks, have_data, tmp_path):
    """An error that only rank 0 meets (--overwrite cannot remove the old params.npz: a directory) ends every
    rank, the other one waiting in the first step's allreduce, with rank 0's message."""
    out = tmp_path / "run"
    (out / "params.npz").mkdir(parents=True)
    t0 = time.perf_counter()
    run = ranks(2, _train_argv(out, "--epochs", "1", "--batch-size", "50", "--overwrite"), timeout=60)
    assert run.returncode != 0
    assert time.perf_counter() - t0 < 30
    assert "rank 0/2: fastconv train: error: --overwrite: " in run.stderr, run.stderr
    assert "params.npz: cannot remove" in run.stderr, run.stderr


# ======================================================================================================
# one process


def test_launched_size_reads_the_launchers_environment():
    assert distributed.launched_size({}) == 1
    assert distributed.launched_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert distributed.launched_size({"PMI_SIZE": "3"}) == 3
    assert distributed.launched_size({"PMI_SIZE": "x"}) == 1


def test_train_under_a_launcher_without_mpi4py_says_how_to_install(monkeypatch, tmp_path, capsys):
    from fastconv.__main__ import main

    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(distributed._state, "MPI", None)
    monkeypatch.setitem(distributed._state, "comm", None)
    assert main(["train", "--model", "lenet", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastconv train: error: mpiexec: started 2 ranks, but fastconv.distributed needs "
                          "mpi4py"), err
    assert "pip install 'fastconv[mpi]'" in err and not (tmp_path / "r").exists()


def test_distributed_trainer_on_one_rank_is_the_plain_trainer():
    """Outside mpiexec ``distributed=True`` is one rank: the same steps, bit for bit."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py not installed (pip install 'fastconv[mpi]')")
    from fastconv.models import build
    from fastconv.trainer import Trainer

    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((70, 1, 28, 28)), rng.integers(0, 10, 70)
    runs = []
    for kw in ({}, {"distributed": True}, {"distributed": True, "batch_per_rank": True}):
        tr = Trainer(build("lenet", dtype=np.float64, seed=0), x, t, x[:20], t[:20], epochs=1,
                     mini_batch_size=30, optimizer="adam", verbose=False, progress=False, seed=0, **kw)
        tr.train()
        assert tr.ranks == 1 and tr.batch_size == 30
        runs.append(tr)
    for tr in runs[1:]:
        assert tr.history["train_loss"] == runs[0].history["train_loss"]
        assert tr.final_test_acc == runs[0].final_test_acc
        assert all(np.array_equal(tr.network.params[k], runs[0].network.params[k]) for k in tr.network.params)


def test_resume_of_a_batch_per_rank_run_on_other_ranks_is_refused(tmp_path, capsys):
    """--batch-per-rank makes the number of ranks part of the run: resuming it on another number is refused
    before anything is loaded, naming the command that resumes it."""

    from fastconv.__main__ import main

    out = tmp_path / "run"
    out.mkdir()
    config = {"model": "lenet", "batch_size": 25, "batch_per_rank": True, "ranks": 2}
    (out / "history.json").write_text(json.dumps({"config": config, "status": "interrupted"}))
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (f"fastconv train: error: --resume: the run in {out} has --batch-per-rank on 2 ranks, this job "
                   f"has 1: its global batch would change; resume it with mpiexec -n 2 fastconv train --out {out} "
                   "--resume\n"), err


# ======================================================================================================
# fastconv.keras: Model.fit / evaluate data-parallel over the ranks (fastconv.keras.distribution)

KERAS_FIT = """
import json, sys
import numpy as np
from fastconv import keras
from fastconv.keras import layers, distribution
keras.backend.set_floatx("float64")
if {single}:
    distribution.set_distribution(None)
keras.utils.set_random_seed(3 + {seed_rank})  # different initial weights per rank: fit broadcasts rank 0's
rng = np.random.default_rng(0)
x = rng.standard_normal((100, 8, 8, 1))
y = keras.utils.to_categorical(rng.integers(0, 4, 100), 4)
model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(3, 3, activation="relu"), layers.Flatten(),
                          layers.Dense(4, activation="softmax")])
model.compile(optimizer=keras.optimizers.{opt}, loss="categorical_crossentropy", metrics=["accuracy"])
h = model.fit(x[:80], y[:80], batch_size=25, epochs=2, shuffle=False, verbose=0,
              validation_data=(x[80:], y[80:]))
ev = model.evaluate(x, y, batch_size=7, verbose=0)
dp = distribution.distribution()
if dp is None or dp.rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump({{"history": h.history, "evaluate": ev, "ranks": 1 if dp is None else dp.size,
                   "weights": [w.tolist() for w in model.get_weights()]}}, f)
"""


@pytest.mark.parametrize("opt", ["SGD(0.1, momentum=0.9)", "Adam(1e-2)"])
def test_keras_fit_on_two_ranks_equals_one_process(ranks, tmp_path, opt):
    """Under `mpiexec -n 2` the tutorial's `fit` runs data-parallel by itself: the global batch of 25 is split
    13 + 12, and weights, history (loss, accuracy, val_*) and `evaluate` equal one process's run to float64
    rounding, although the ranks started from different weights."""
    two, one = tmp_path / "two.json", tmp_path / "one.json"
    run = ranks(2, ["-c", KERAS_FIT.format(single=False, seed_rank="__import__('fastconv.distributed').distributed.rank()",
                                           opt=opt), str(two)])
    assert run.returncode == 0, run.stdout + run.stderr
    proc = subprocess.run([sys.executable, "-c", KERAS_FIT.format(single=True, seed_rank=0, opt=opt), str(one)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr

    a, b = json.loads(two.read_text()), json.loads(one.read_text())
    assert (a["ranks"], b["ranks"]) == (2, 1)
    assert a["history"].keys() == b["history"].keys() == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key in a["history"]:
        np.testing.assert_allclose(a["history"][key], b["history"][key], rtol=1e-12, atol=1e-14, err_msg=key)
    np.testing.assert_allclose(a["evaluate"], b["evaluate"], rtol=1e-12)
    for wa, wb in zip(a["weights"], b["weights"], strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-10, atol=1e-13)


def test_keras_fit_ranks_agree_with_shuffle_and_checkpoints(ranks, tmp_path):
    """With shuffling and dropout the ranks still draw the same permutation and end bit-identical (fit checks it
    after each epoch); only rank 0 prints the progress and writes the checkpoint file."""
    script = f"""
    import numpy as np, hashlib
    from fastconv import keras, distributed
    from fastconv.keras import layers
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 6)).astype("float32"), rng.integers(0, 3, 64)
    m = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.3),
                          layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ck = keras.callbacks.ModelCheckpoint({str(tmp_path / 'm.keras')!r})
    m.fit(x, y, batch_size=16, epochs=3, verbose=2, callbacks=[ck])
    h = hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest()
    open({str(tmp_path)!r} + f"/digest{{distributed.rank()}}", "w").write(h)
    """
    run = ranks(2, script)
    assert run.returncode == 0, run.stdout + run.stderr
    # each rank writes its digest to a file of its own (the two share one stdout, where one rank's output can
    # land in the middle of the other's line, even inside a digest)
    digests = [(tmp_path / f"digest{r}").read_text() for r in range(2)]
    assert len(digests[0]) == 64 and digests[0] == digests[1], (digests, run.stdout)
    assert run.stdout.count("Epoch 3/3") == 1, run.stdout
    assert (tmp_path / "m.keras").exists()


def test_keras_distribution_arguments():
    """DataParallel's `devices` must match the ranks; set_distribution takes a DataParallel or None; without
    mpi4py, DataParallel says how to install it."""
    from fastconv.keras import distribution

    with pytest.raises(ValueError, match="set_distribution"):
        distribution.set_distribution("data_parallel")
    if importlib.util.find_spec("mpi4py") is None:
        with pytest.raises(ImportError, match="pip install 'fastconv\\[mpi\\]'"):
            distribution.DataParallel()
        return
    with pytest.raises(ValueError, match="devices"):
        distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    assert distribution.DataParallel(devices=1).size == 1
