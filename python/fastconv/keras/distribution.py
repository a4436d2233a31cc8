"""Keras 3's ``keras.distribution`` names for data-parallel ``fit`` over MPI ranks (:mod:`fastconv.distributed`).

Keras 3 writes data parallelism as ``keras.distribution.set_distribution(keras.distribution.DataParallel())``
before building the model; fastconv.keras takes the same two lines, and its "devices" are the MPI ranks that
``mpiexec -n N python script.py`` starts (on one machine or several). Under a launcher with more than one rank
and nothing set, ``DataParallel()`` is switched on by itself, as ``fastconv train`` does, so the tutorial's script
runs data-parallel unchanged; ``set_distribution(None)`` turns it off (every rank then trains on its own).

What ``fit`` does on N ranks
----------------------------
- ``batch_size`` is the **global** batch, as in Keras: every rank draws the same permutation of the training
  data (seeded from rank 0) and takes its contiguous shard of each global batch (sizes differ by at most one),
  so the ranks together see each example once per epoch. A final batch with fewer examples than ranks is
  skipped (at most N - 1 examples per epoch).
- The weights (and any optimizer state) are broadcast from rank 0 when ``fit`` starts. Each step averages the
  gradients with one ``Allreduce`` per dtype, weighted by the shard sizes, so a step equals one process's step
  on the whole global batch up to float rounding of the sum; every rank then applies the same update and
  the ranks stay bit-identical (checked after every epoch by a digest of the weights; a mismatch raises).
- Non-trainable weights (batch norm's moving statistics, updated from each rank's shard) are averaged over the
  ranks at the end of each epoch. Validation data are split over the ranks too.
- The epoch's logs (loss, metrics, ``val_*``) are the global ones: the trackers' sums are added over the ranks,
  so ``History``, ``EarlyStopping`` and ``ReduceLROnPlateau`` decide the same on every rank. The per-batch
  progress bar shows rank 0's running values. Only rank 0 prints and writes files (the progress bar,
  ``ModelCheckpoint``, ``CSVLogger``); the other callbacks run on every rank.
- ``evaluate`` splits its data over the ranks and returns the global result on each. ``predict``,
  ``train_on_batch`` and ``test_on_batch`` work on the calling rank's own arrays only.
- Dropout draws from each rank's own ``fastconv.keras`` generator; with the same seed on every rank, ranks draw
  the same masks for the same position in their shards (the examples differ, so the masks' effect does).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["DataParallel", "distribution", "list_devices", "set_distribution"]

_UNSET = object()
_state = {"value": _UNSET}


class DataParallel:
    """Data-parallel training over the MPI ranks of ``mpiexec -n N`` (Keras 3's name).

    Parameters
    ----------
    devices : None, int or list, optional
        Keras passes a list of device names; here the devices are the job's ranks, so ``None`` (all of them),
        their number, or a list of that length is accepted, and anything else raises ``ValueError``.
    timeout : float, optional
        Seconds a collective may take before the whole job is aborted (:func:`fastconv.distributed.init`).
    """

    def __init__(self, devices=None, timeout: float | None = None, **kwargs):
        if kwargs.pop("device_mesh", None) is not None:
            raise ValueError("DataParallel: `device_mesh` is not supported; the devices are the MPI ranks")
        kwargs.pop("auto_shard_dataset", None)
        if kwargs:
            raise TypeError(f"DataParallel: unexpected keyword argument(s) {sorted(kwargs)}")
        from .. import distributed as dist

        self._dist = dist
        if timeout is None:
            dist.init()
        else:
            dist.init(timeout=float(timeout))
        self.rank, self.size = dist.rank(), dist.size()
        if devices is not None:
            n = devices if isinstance(devices, int) and not isinstance(devices, bool) else None
            if n is None:
                try:
                    n = len(devices)
                except TypeError:
                    raise ValueError(
                        f"DataParallel: `devices` must be None, an int or a list; got {devices!r}"
                    ) from None
            if n != self.size:
                raise ValueError(
                    f"DataParallel: `devices` names {n} devices but the job has {self.size} MPI rank(s); "
                    f"start it with `mpiexec -n {n} ...` or pass devices=None"
                )
        self._buffers: dict = {}

    def __repr__(self):
        return f"<DataParallel ranks={self.size} rank={self.rank}>"

    # ---- used by Model.fit / evaluate

    def begin(self, model) -> np.random.Generator:
        """Make every rank's weights and optimizer state equal to rank 0's; return the generator of the
        epochs' permutations, seeded from rank 0's ``fastconv.keras`` generator (the same on every rank)."""
        from . import backend

        dist = self._dist
        dist.broadcast_params({f"{i:04d}": v._data for i, v in enumerate(model.weights)})
        opt = getattr(model, "optimizer", None)
        if opt is not None and hasattr(opt, "_state_arrays"):
            iterations = dist.broadcast_object(int(opt.iterations))
            keys = dist.broadcast_object(sorted(k for k in opt._state_arrays() if k != "iterations"))
            mine = opt._state_arrays()
            if sorted(k for k in mine if k != "iterations") != keys:
                raise ValueError(
                    f"DataParallel: rank {self.rank}'s optimizer state differs in its keys from rank 0's"
                )
            arrays = {k: mine[k] for k in keys}
            dist.broadcast_params(arrays)
            arrays["iterations"] = np.array(iterations, dtype=np.int64)
            opt._load_state_arrays(arrays)
        seed = dist.broadcast_object(int(backend.rng().integers(2**63)))
        return np.random.default_rng(seed)

    def shard(self, sel):
        """This rank's part of the global batch ``sel`` (index array), or None when it has fewer examples
        than ranks (the batch is then skipped on every rank alike)."""
        if len(sel) < self.size:
            return None
        return self._dist.shard(sel, self.rank, self.size)

    def average_gradients(self, grads: dict, weight: float) -> None:
        """Replace ``grads`` in place by the ranks' weighted sum, ``weight`` = this shard's share of the batch."""
        self._dist.average_gradients(grads, weight, self._buffers)

    def reduce_trackers(self, trackers) -> None:
        """Add the running sums of the loss / metric trackers over the ranks (each then holds the global mean)."""
        sums = self._dist.reduce_sum([x for t in trackers for x in (t._total, t._count)])
        for i, t in enumerate(trackers):
            t._total, t._count = float(sums[2 * i]), float(sums[2 * i + 1])

    def average_buffers(self, model) -> None:
        """Average the non-trainable weights (batch norm's moving statistics) over the ranks."""
        buffers = {f"{i:04d}": v._data for i, v in enumerate(model.non_trainable_weights)}
        if buffers:
            self._dist.allreduce_mean(buffers)

    def check_in_step(self, model, epoch: int) -> None:
        """Raise on every rank if the ranks' weights are no longer identical."""
        h = hashlib.sha256()
        for v in model.weights:
            h.update(np.ascontiguousarray(v._data).tobytes())
        digests = self._dist.allgather(h.hexdigest())
        if len(set(digests)) != 1:
            raise RuntimeError(
                f"DataParallel: the ranks' weights differ after epoch {epoch + 1} (a rank changed its model "
                "outside fit, or a callback changed weights on one rank only)"
            )

    def local_part(self, n: int) -> np.ndarray:
        """This rank's contiguous part of ``range(n)`` (validation and ``evaluate``)."""
        return self._dist.shard(np.arange(n), self.rank, self.size)


def set_distribution(value) -> None:
    """Use ``value`` (a :class:`DataParallel`, or None for none) for ``fit`` and ``evaluate`` from now on."""
    if value is not None and not isinstance(value, DataParallel):
        raise ValueError(
            f"set_distribution: expected a fastconv.keras.distribution.DataParallel or None, got "
            f"{type(value).__name__}"
        )
    _state["value"] = value


def distribution():
    """The distribution in use: the one set, else ``DataParallel()`` when the script runs under a launcher with
    more than one rank (``mpiexec -n N``), else None."""
    if _state["value"] is _UNSET:
        from .. import distributed as dist

        _state["value"] = DataParallel() if dist.launched_size() > 1 else None
    return _state["value"]


def list_devices(device_type=None) -> list:
    """The job's devices as Keras names them: ``['cpu:0', ..., 'cpu:N-1']``, one per MPI rank."""
    if device_type not in (None, "cpu", "CPU"):
        raise ValueError(f"list_devices: fastconv's ranks are CPU processes; got device_type={device_type!r}")
    from .. import distributed as dist

    n = dist.launched_size() if not dist.is_initialized() else dist.size()
    return [f"cpu:{i}" for i in range(max(1, n))]
