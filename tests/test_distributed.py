"""fastconv.distributed: data-parallel steps over MPI equal one process's step on the whole batch.

Tests that need several processes take the ``ranks`` fixture: it runs a script under ``mpiexec -n N`` and is
skipped, with the reason, where mpiexec or mpi4py is missing (``.ci/run`` installs both).
"""

import importlib.util
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

    def run(n, script, timeout=120):
        env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
        cmd = ["mpiexec", "-n", str(n), sys.executable, "-c", textwrap.dedent(script)]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
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
