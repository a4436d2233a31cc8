"""Synchronous data-parallel training over MPI (mpi4py): the same step on every rank, gradients averaged.

Run a script or ``fastconv train`` under ``mpiexec -n N``. Every rank holds the whole network; each takes its
shard of every global batch (:func:`shard`), computes its gradient, and :class:`DistributedOptimizer` averages
the gradients over the ranks with **one** ``Allreduce`` per step over a fused flat buffer (one per dtype), then
runs the wrapped optimizer's own fused update. Every rank applies the same averaged gradient to the same
parameters (:func:`broadcast_params` makes them equal at the start), so the ranks stay bit-identical.

This is the only module of fastconv that imports mpi4py, lazily: without it (``pip install 'fastconv[mpi]'``
plus an MPI library such as Debian's ``openmpi-bin libopenmpi-dev``) everything else works, and the functions
here raise an ``ImportError`` that says how to install it. Outside ``mpiexec`` they work too, as one rank.

Failure never hangs the job: once :func:`init` has run with more than one rank, an uncaught exception on any
rank prints that rank's traceback and calls ``MPI_Abort``, which ends every rank with a non-zero exit; a
collective of this module that does not complete within ``timeout`` seconds does the same.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback

import numpy as np

__all__ = [
    "init",
    "is_initialized",
    "rank",
    "size",
    "local_rank",
    "barrier",
    "allgather",
    "allreduce_mean",
    "average_gradients",
    "broadcast_params",
    "broadcast_optimizer",
    "shard",
    "reduce_sum",
    "broadcast_object",
    "abort",
    "launched_size",
    "DistributedOptimizer",
    "DEFAULT_TIMEOUT",
]

DEFAULT_TIMEOUT = 600.0  # seconds a collective may take before the job is aborted

_INSTALL = (
    "fastconv.distributed needs mpi4py and an MPI library: on Debian/Ubuntu "
    "`apt-get install openmpi-bin libopenmpi-dev` then `pip install 'fastconv[mpi]'` (or `pip install mpi4py`)"
)

_state = {"comm": None, "MPI": None, "timeout": DEFAULT_TIMEOUT, "hook": None}


# ======================================================================================================
# the communicator


def _mpi():
    """mpi4py's ``MPI`` module, imported on first use."""
    if _state["MPI"] is None:
        try:
            from mpi4py import MPI
        except ImportError as exc:  # mpi4py missing, or its libmpi not loadable
            raise ImportError(f"{_INSTALL} ({exc})") from exc
        _state["MPI"] = MPI
    return _state["MPI"]


def init(timeout: float = DEFAULT_TIMEOUT):
    """Start MPI (once) and return the world communicator.

    Parameters
    ----------
    timeout : float
        Seconds any collective of this module may take before the whole job is aborted (``MPI_Abort``).

    Returns
    -------
    mpi4py.MPI.Comm
        ``COMM_WORLD``.

    Notes
    -----
    With more than one rank this also installs a ``sys.excepthook`` (and a ``threading.excepthook``) that
    prints the failing rank's traceback and aborts the job, so that the other ranks do not wait forever in
    their next collective.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout: expected a number of seconds > 0, got {timeout!r}")
    _state["timeout"] = float(timeout)
    if _state["comm"] is None:
        comm = _mpi().COMM_WORLD
        _state["comm"] = comm
        if comm.Get_size() > 1 and _state["hook"] is None:
            _install_abort_hooks(comm)
    return _state["comm"]


def is_initialized() -> bool:
    """Whether :func:`init` has run in this process."""
    return _state["comm"] is not None


def _comm():
    return _state["comm"] if _state["comm"] is not None else init(_state["timeout"])


# Environment variables in which MPI launchers pass the number of ranks to each process: Open MPI's mpiexec,
# and the PMI one of MPICH's Hydra and Intel MPI.
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def launched_size(environ=None) -> int:
    """The number of ranks an MPI launcher (``mpiexec -n N``) started, read from its environment; 1 when this
    process was not started by one. Does not import mpi4py nor start MPI."""
    env = os.environ if environ is None else environ
    for name in _LAUNCHER_SIZE_VARS:
        value = env.get(name, "")
        if value.strip().isdigit():
            return max(int(value), 1)
    return 1


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` as this rank's and end every rank of the job with exit code ``code`` (MPI_Abort).

    Outside ``mpiexec`` (one rank) this only prints the message and raises ``SystemExit(code)``.
    """
    comm = _state["comm"]
    if comm is None or comm.Get_size() == 1:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
        raise SystemExit(code)
    _abort(comm, message, code)


def _abort(comm, message: str, code: int = 1) -> None:
    """Print ``message`` for this rank and end every rank of the job."""
    sys.stderr.write(f"fastconv.distributed: rank {comm.Get_rank()}/{comm.Get_size()}: {message}\n")
    sys.stderr.flush()
    comm.Abort(code)


def _install_abort_hooks(comm) -> None:
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, SystemExit) and not exc.code:
            return previous(exc_type, exc, tb)
        text = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip()
        _abort(comm, f"uncaught exception, aborting the job\n{text}")

    def thread_hook(args):
        hook(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook
    _state["hook"] = hook


class _Watchdog:
    """Abort the job when the collective it guards takes longer than the timeout."""

    def __init__(self, what: str):
        self.what = what
        self.timer = None

    def __enter__(self):
        comm = _state["comm"]
        if comm is not None and comm.Get_size() > 1:
            seconds = _state["timeout"]
            self.timer = threading.Timer(
                seconds, _abort, (comm, f"{self.what} did not complete within {seconds:g} s (another rank "
                                        "failed or stopped); aborting the job"))
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.cancel()
        return False


def rank() -> int:
    """This process's rank in ``COMM_WORLD`` (0 outside ``mpiexec``)."""
    return _comm().Get_rank()


def size() -> int:
    """Number of ranks (1 outside ``mpiexec``)."""
    return _comm().Get_size()


def local_rank() -> int:
    """This process's rank among the ranks on its own machine (to pick a GPU or pin threads)."""
    MPI = _mpi()
    comm = _comm()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        return node.Get_rank()
    finally:
        node.Free()


def barrier() -> None:
    """Wait until every rank has called it (aborts the job after the timeout)."""
    comm = _comm()
    with _Watchdog("barrier"):
        comm.Barrier()


def allgather(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (small Python objects: metrics, flags)."""
    comm = _comm()
    with _Watchdog("allgather"):
        return comm.allgather(obj)


# ======================================================================================================
# arrays: fused buffers


def _fused_groups(arrays: dict) -> dict:
    """dtype -> list of keys, in the dict's order (the same on every rank: the same network)."""
    groups: dict = {}
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{key}: expected a NumPy array, got {type(value).__name__}")
        groups.setdefault(value.dtype, []).append(key)
    return groups


def _collective_on(arrays: dict, buffers: dict, run) -> None:
    """Pack ``arrays`` into one flat buffer per dtype, ``run(buffer)`` on it, unpack in place."""
    for dtype, keys in _fused_groups(arrays).items():
        total = sum(arrays[k].size for k in keys)
        buf = buffers.get(dtype)
        if buf is None or buf.size != total:
            buf = buffers[dtype] = np.empty(total, dtype=dtype)
        offset = 0
        for k in keys:
            n = arrays[k].size
            buf[offset:offset + n] = arrays[k].reshape(-1)
            offset += n
        run(buf)
        offset = 0
        for k in keys:
            n = arrays[k].size
            arrays[k][...] = buf[offset:offset + n].reshape(arrays[k].shape)
            offset += n


def allreduce_mean(arrays: dict, buffers: dict | None = None) -> dict:
    """Average every array over the ranks, in place, with one ``Allreduce`` per dtype; returns ``arrays``.

    The sum is divided by the number of ranks on every rank alike, so every rank holds the same bits.
    ``buffers`` (a dict) keeps the fused buffers between calls.
    """
    comm = _comm()
    p = comm.Get_size()
    if p == 1:
        return arrays
    MPI = _mpi()

    def run(buf):
        with _Watchdog("allreduce of the gradients"):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        buf /= buf.dtype.type(p)

    _collective_on(arrays, {} if buffers is None else buffers, run)
    return arrays


def average_gradients(grads: dict, weight: float | None = None, buffers: dict | None = None) -> dict:
    """Average ``grads`` over the ranks in place (:func:`allreduce_mean`); with ``weight``, this rank's share
    of the global batch when shards are uneven, the ranks' ``weight * grad`` are summed instead."""
    if weight is not None and size() > 1:
        for g in grads.values():
            g *= g.dtype.type(weight * size())
    return allreduce_mean(grads, buffers)


def reduce_sum(values) -> np.ndarray:
    """The element-wise sum over the ranks of a short float64 vector (metrics, counts, flags), on every rank.

    One ``Allreduce`` of the whole vector: a step's loss, correct count, example count and stop flags
    cost one message together.
    """
    out = np.array(values, dtype=np.float64).reshape(-1)
    comm = _comm()
    if comm.Get_size() == 1:
        return out
    MPI = _mpi()
    with _Watchdog("allreduce of the metrics"):
        comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
    return out


def broadcast_object(obj, root: int = 0):
    """Rank ``root``'s ``obj`` on every rank (pickled: settings, RNG states, a checkpoint file's bytes)."""
    comm = _comm()
    if comm.Get_size() == 1:
        return obj
    with _Watchdog("broadcast"):
        return comm.bcast(obj, root=root)


def broadcast_params(params: dict, root: int = 0) -> dict:
    """Make every rank's ``params`` equal to rank ``root``'s, in place (one ``Bcast`` per dtype)."""
    comm = _comm()
    if comm.Get_size() == 1:
        return params
    names = allgather(sorted((k, v.shape, str(v.dtype)) for k, v in params.items()))
    if any(n != names[root] for n in names):
        raise ValueError("broadcast_params: the ranks hold different parameter names, shapes or dtypes")

    def run(buf):
        with _Watchdog("broadcast of the parameters"):
            comm.Bcast(buf, root=root)

    _collective_on(params, {}, run)
    return params


def broadcast_optimizer(optimizer, root: int = 0):
    """Make every rank's optimizer state (moments, step count, hyperparameters) equal to rank ``root``'s."""
    comm = _comm()
    if comm.Get_size() == 1:
        return optimizer
    inner = optimizer.optimizer if isinstance(optimizer, DistributedOptimizer) else optimizer
    state = inner.state_dict()
    plain = {k: v for k, v in state.items() if not isinstance(v, dict)}
    with _Watchdog("broadcast of the optimizer state"):
        plain = comm.bcast(plain, root=root)  # hyperparameters and counters: small Python values
        present = comm.bcast(sorted(k for k, v in state.items() if isinstance(v, dict)), root=root)
    for key in present:
        arrays = state.get(key)
        if not isinstance(arrays, dict):
            raise ValueError(f"broadcast_optimizer: rank {comm.Get_rank()} has no {key!r} state yet")
        broadcast_params(arrays, root)
        plain[key] = arrays
    inner.load_state_dict(plain)
    return optimizer


# ======================================================================================================
# data and the optimizer


def shard(indices, rank_: int | None = None, size_: int | None = None):
    """This rank's part of a global batch ``indices``: contiguous, sizes differing by at most one.

    Every rank draws the same permutation (same seed) and calls this on the same global batch, so the ranks
    together see each example exactly once. With a batch of B over p ranks, ranks ``r < B % p`` take
    ``B // p + 1`` examples and the others ``B // p``.
    """
    r = rank() if rank_ is None else rank_
    p = size() if size_ is None else size_
    n = len(indices)
    base, extra = divmod(n, p)
    start = r * base + min(r, extra)
    return indices[start:start + base + (r < extra)]


class DistributedOptimizer:
    """Wrap a fastconv (or the book's) optimizer: ``update`` averages the gradients over the ranks first.

    Parameters
    ----------
    optimizer : object with ``update(params, grads)``
        The optimizer every rank runs on the averaged gradient (``fastconv.optimizer.Adam()``, ...).

    Notes
    -----
    Hyperparameters read and written on the wrapper (``opt.lr = ...``, as the Trainer's schedules do) go to
    the wrapped optimizer; ``state_dict`` / ``load_state_dict`` are the wrapped optimizer's.
    """

    def __init__(self, optimizer):
        if not callable(getattr(optimizer, "update", None)):
            raise TypeError(f"optimizer: expected an object with update(params, grads), got "
                            f"{type(optimizer).__name__}")
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "_buffers", {})
        init(_state["timeout"])

    def update(self, params, grads, weight: float | None = None):
        """Average ``grads`` over the ranks (in place, one allreduce), then ``optimizer.update``.

        Parameters
        ----------
        weight : float, optional
            This rank's share of the global batch (its shard size / the batch size) when shards are uneven;
            the gradients are then summed as ``weight * grad`` instead of averaged.
        """
        self.average(grads, weight)
        self.optimizer.update(params, grads)

    def average(self, grads, weight: float | None = None):
        """The first half of :meth:`update`: :func:`average_gradients` with this wrapper's buffers, without
        updating (mixed precision checks the gradients before its own update)."""
        average_gradients(grads, weight, self._buffers)

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, d):
        return self.optimizer.load_state_dict(d)

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):
        setattr(self.optimizer, name, value)

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r}, ranks={size()})"

