"""The book's ``common/trainer.py`` ``Trainer`` (same signature, attributes and optimizer keys), extended.

Extensions, all keyword-only and off or book-like by default where the book defines a behaviour:
shuffled epochs (``sampling='shuffle'``; ``'replace'`` is the book's sampling with replacement), learning-rate
schedules (``'step'``, ``'cosine'``, any callable, optional linear warm-up), data augmentation, a checkpoint
per epoch, every few minutes and on Ctrl-C, with exact resume (also from the middle of an epoch), a progress
bar (tqdm when importable, else a plain one), NaN/Inf detection (:class:`TrainingDiverged`), per-epoch
accuracies and losses in inference mode, a JSON history and loss/accuracy curves.

Every file the Trainer writes (checkpoints, history, curves) goes through one writer,
:func:`fastconv._atomic.atomic_write` (temporary file, fsync, rename, fsync of the directory), so a crash or a
power loss leaves the old file or the complete new one. This module is the training loop; checkpoint I/O (and
the checkpoint format) is in :mod:`fastconv.checkpoint`, the history and the curves in :mod:`fastconv.history`.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
import numbers
import os
import signal
import sys
import threading
import time

import numpy as np

from . import checkpoint as _checkpoint
from . import history as _history
from . import precision as _precision
from .checkpoint import _list_checkpoints, _remove_stale_temporaries

__all__ = [
    "OPTIMIZER_KEYS",
    "Trainer",
    "TrainingDiverged",
    "cosine_schedule",
    "make_optimizer",
    "step_schedule",
]

# ======================================================================================================
# optimizers by name

# The book's keys (``rmsprpo`` is its spelling) plus the correct ``rmsprop`` and ``adadelta``; values are
# class names in fastconv.optimizer, looked up when used so optimizers added later are found.
OPTIMIZER_KEYS = {
    "sgd": "SGD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "AdaGrad",
    "rmsprpo": "RMSprop",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adadelta": "Adadelta",
}


def make_optimizer(name, optimizer_param=None):
    """Build a :mod:`fastconv.optimizer` optimizer from the book's key.

    Parameters
    ----------
    name : str
        One of :data:`OPTIMIZER_KEYS` (case-insensitive): ``sgd, momentum, nesterov, adagrad, rmsprpo`` (the
        book's spelling), ``rmsprop, adam, adadelta``.
    optimizer_param : dict, optional
        Keyword arguments of the optimizer, e.g. ``{'lr': 0.01}``.

    Returns
    -------
    optimizer
        An object with ``update(params, grads)`` and a settable ``lr``.
    """
    from . import optimizer as optimizer_module

    if not isinstance(name, str):
        raise TypeError(
            f"optimizer: expected a name or an object with update(params, grads), got {type(name).__name__}"
        )
    key = name.lower()
    if key not in OPTIMIZER_KEYS:
        raise ValueError(f"optimizer: unknown optimizer {name!r}; expected one of {sorted(OPTIMIZER_KEYS)}")
    cls = getattr(optimizer_module, OPTIMIZER_KEYS[key], None)
    if cls is None:
        raise ValueError(
            f"optimizer: {OPTIMIZER_KEYS[key]} is not available in this version of fastconv.optimizer"
        )
    param = {} if optimizer_param is None else optimizer_param
    if not isinstance(param, dict):
        raise TypeError(f"optimizer_param: expected a dict, got {type(param).__name__}")
    try:
        return cls(**param)
    except TypeError as exc:
        raise ValueError(f"optimizer_param: {exc}") from exc


# ======================================================================================================
# learning-rate schedules: callables epoch (float, 0 at the start) -> factor of the base learning rate


def step_schedule(step_size=1, gamma=0.1):
    """Step decay: the factor is ``gamma ** floor(epoch / step_size)``.

    Parameters
    ----------
    step_size : float, optional
        Epochs between two decays (> 0).
    gamma : float, optional
        Multiplicative decay (>= 0).

    Returns
    -------
    callable
        ``schedule(epoch) -> factor``.
    """
    step_size = _positive_float(step_size, "step_size")
    gamma = _nonneg_float(gamma, "gamma")

    def schedule(epoch):
        return gamma ** math.floor(epoch / step_size + 1e-9)

    return schedule


def cosine_schedule(epochs, min_factor=0.0):
    """Cosine annealing from 1 at epoch 0 to ``min_factor`` at ``epochs``.

    Parameters
    ----------
    epochs : float
        Length of the decay in epochs (> 0); the factor stays at ``min_factor`` afterwards.
    min_factor : float, optional
        Final factor (>= 0).

    Returns
    -------
    callable
        ``schedule(epoch) -> factor``.
    """
    epochs = _positive_float(epochs, "epochs")
    min_factor = _nonneg_float(min_factor, "min_factor")

    def schedule(epoch):
        e = min(max(epoch, 0.0), epochs)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * e / epochs))

    return schedule


def _with_warmup(schedule, warmup_epochs, iter_per_epoch):
    """``schedule`` times a linear ramp reaching 1 after ``warmup_epochs`` (step k of the ramp gets k/length)."""
    ramp = warmup_epochs * iter_per_epoch

    def warm(epoch):
        return schedule(epoch) * min(1.0, (epoch * iter_per_epoch + 1.0) / ramp)

    return warm


def _positive_float(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {v}")
    return v


def _nonneg_float(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
    v = float(v)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {v}")
    return v


def _int_arg(v, name, minimum):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    return int(v)


# ======================================================================================================
# progress display


def _import_tqdm():
    """tqdm's class, or None when tqdm is not installed (it is an optional extra: fastconv[progress])."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _NoProgress:
    def update(self, done, text):
        pass

    def close(self):
        pass


class _TqdmProgress:
    def __init__(self, tqdm, total, desc, stream):
        self._bar = tqdm(
            total=total,
            desc=desc,
            file=stream,
            leave=False,
            unit="batch",
            mininterval=0.2,
            dynamic_ncols=True,
        )
        self._done = 0

    def update(self, done, text):
        # tqdm redraws at most every mininterval; the last step of an epoch is always drawn
        self._bar.set_postfix_str(text, refresh=done == self._bar.total)
        self._bar.update(done - self._done)
        self._done = done

    def close(self):
        self._bar.close()


# Plain display: on a TTY one line rewritten in place at most every _PLAIN_TTY_INTERVAL s; otherwise a new
# line only when a further tenth of the epoch is done *and* _PLAIN_MIN_INTERVAL s have passed (<= 10 lines
# per epoch, none for epochs shorter than the interval).
_PLAIN_TTY_INTERVAL = 0.5
_PLAIN_MIN_INTERVAL = 2.0


class _PlainProgress:
    def __init__(self, total, desc, stream):
        self._total = max(int(total), 1)
        self._desc = desc
        self._stream = stream
        self._tty = _is_tty(stream)
        self._start = self._last = time.monotonic()
        self._decile = 0
        self._width = 0

    def update(self, done, text):
        now = time.monotonic()
        line = f"{self._desc} {100 * done // self._total:3d}% {done}/{self._total}  {text}"
        if self._tty:
            if now - self._last >= _PLAIN_TTY_INTERVAL or done == self._total:
                self._stream.write("\r" + line.ljust(self._width))
                self._stream.flush()
                self._width = len(line)
                self._last = now
            return
        decile = 10 * done // self._total
        if decile > self._decile and now - self._last >= _PLAIN_MIN_INTERVAL:
            self._stream.write(line + "\n")
            self._stream.flush()
            self._decile = decile
            self._last = now

    def close(self):
        if self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()


def _progress(enabled, total, desc):
    """The progress display of one epoch: tqdm on a terminal when it is installed, else plain lines.

    When stderr is not a terminal (a log file, CI) the plain display is used even with tqdm installed:
    tqdm would write a carriage-return update every refresh into the log.
    """
    if not enabled:
        return _NoProgress()
    stream = sys.stderr
    tqdm = _import_tqdm() if _is_tty(stream) else None
    if tqdm is not None:
        return _TqdmProgress(tqdm, total, desc, stream)
    return _PlainProgress(total, desc, stream)


# ======================================================================================================
# small helpers


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or Inf; training stopped before the parameters were updated with it.

    Attributes
    ----------
    iteration : int
        The iteration (0-based, counted over the whole run) whose loss or gradient was not finite.
    loss : float
        The loss of that iteration.
    checkpoint : str or None
        The last good checkpoint (untouched), or None when none was written.
    """

    def __init__(self, message, iteration, loss, checkpoint):
        super().__init__(message)
        self.iteration = iteration
        self.loss = loss
        self.checkpoint = checkpoint


# ======================================================================================================
# Trainer


class Trainer:
    """Train a network with mini-batch gradient descent (the book's ``common.trainer.Trainer``).

    Parameters
    ----------
    network : object
        Has ``params`` (dict of arrays, updated in place), ``gradient(x, t)``, ``loss(x, t)`` and
        ``accuracy(x, t, batch_size)``, like the book's networks and :mod:`fastconv.models`.
    x_train, t_train, x_test, t_test : ndarray
        Training and test data; ``t`` is integer labels or one-hot rows.
    epochs : int, optional
        Number of passes over the training data.
    mini_batch_size : int, optional
        Examples per step.
    optimizer : str or object, optional
        A key of :data:`OPTIMIZER_KEYS` (the book's ``'SGD'``, ``'Momentum'``, ..., ``'rmsprpo'``, plus
        ``'rmsprop'`` and ``'adadelta'``), or an optimizer instance (``update(params, grads)``, ``lr``).
    optimizer_param : dict, optional
        Keyword arguments for a named optimizer (ignored for an instance).
    evaluate_sample_num_per_epoch : int, optional
        Evaluate the per-epoch train and test accuracy (and loss) on the first this many examples (None:
        all, as the book does). These evaluations run the network in inference mode (``predict(x,
        train_flg=False)``: dropout off, batch norm on running statistics); the loss is the mean
        cross-entropy of the softmax of ``predict`` (no weight-decay term). A network without ``predict``
        gets its ``accuracy`` and no loss.
    verbose : bool, optional
        Print one line per epoch and the final test accuracy (the book prints the loss of every step;
        this prints a progress bar instead, see ``progress``). False prints nothing.
    sampling : {'shuffle', 'replace'}, optional
        ``'shuffle'``: every epoch visits each example once, in a new random order (the last batch of an
        epoch is smaller when the sizes do not divide). ``'replace'``: each batch is drawn with replacement
        (the book's ``np.random.choice``), from this trainer's own generator.
    lr_schedule : None, 'step', 'cosine' or callable, optional
        The learning rate of each step is ``base_lr * factor(epoch)``, ``epoch`` a float (0 at the start,
        1 after the first epoch), ``base_lr`` the optimizer's ``lr`` at construction.
    lr_schedule_param : dict, optional
        ``'step'``: ``step_size`` (epochs, default ``max(1, epochs // 4)``), ``gamma`` (default 0.5);
        ``'cosine'``: ``min_factor`` (default 0), ``epochs`` (its length, default ``epochs``); any
        schedule: ``warmup_epochs`` (linear ramp, default 0).
    augment : callable, optional
        ``augment(x_batch) -> augmented x_batch`` (same shape), applied to every training batch, e.g.
        :class:`fastconv.augment.ImageAugmenter`.
    checkpoint_dir : str or path, optional
        Write a checkpoint at the end of every epoch (``epoch-NNNN.npz``: parameters, optimizer state,
        counters, histories, RNG states), keeping the last ``keep_checkpoints``; in the middle of an epoch
        every ``checkpoint_interval`` seconds and when :meth:`train` is interrupted with Ctrl-C
        (``epoch-NNNN-step-SSSSSS.npz``: NNNN epochs and SSSSSS steps done; only the newest such one is
        kept, and none older than the newest end-of-epoch checkpoint). A fresh run (``resume`` False) first
        removes checkpoints of an earlier run there. Every run first removes the temporary files a killed
        checkpoint write left there (``.epoch-NNNN.npz.<8 hex>.tmp``), no other file.
    resume : bool, optional
        Continue from the newest checkpoint in ``checkpoint_dir`` that can be read (start fresh when there
        is none): an empty, truncated or corrupt newer one is skipped with a ``RuntimeWarning``; when none
        can be read, ``ValueError``. A checkpoint that reads but does not match this trainer raises
        ``ValueError``. With the same data and settings, training 2 epochs at once and 1 epoch + resume for 1
        give bit-identical parameters (NumPy's global RNG, which ``Dropout`` draws from, is restored too),
        and so does a run interrupted in the middle of an epoch and resumed.
    seed : int, optional
        Seed of the trainer's generator (batch order). Does not touch NumPy's global RNG.
    progress : bool, optional
        Show a progress bar (to stderr) with loss, running train accuracy and examples/s: tqdm on a
        terminal when it is installed (``pip install "fastconv[progress]"``), otherwise a plain line; when
        stderr is not a terminal, a plain line per tenth of an epoch at most every 2 s.
    keep_checkpoints : int or None, optional
        How many end-of-epoch checkpoints to keep (None: all).
    checkpoint_interval : float or None, optional
        With ``checkpoint_dir``: seconds of training between two checkpoints in the middle of an epoch
        (default 300; None: only at the end of epochs and on Ctrl-C). While :meth:`train` runs in the main
        thread with Python's default SIGINT handler, the first Ctrl-C lets the current step finish, writes
        a checkpoint and raises ``KeyboardInterrupt`` (``interrupted`` is then True); a second one stops at
        once.
    on_epoch_end : callable, optional
        ``on_epoch_end(trainer)``, called after each epoch's evaluation and checkpoint (e.g. to save the
        history).
    loss_after_update : bool, optional
        False (default): record the loss of the forward pass that computed the gradient (no extra pass;
        taken from ``network.last_layer.loss`` when the network has it). True: compute it again after the
        update, as the book does (one more forward pass per step).
    eval_batch_size : int, optional
        Batch size of the accuracy evaluations.
    distributed : bool, optional
        Data-parallel training over MPI (:mod:`fastconv.distributed`; run the script under ``mpiexec -n N``):
        every rank holds the data and the network and runs this Trainer with the same arguments. Each rank
        takes its shard of every global batch (:func:`fastconv.distributed.shard`: contiguous, sizes
        differing by at most one, no example twice) of the epoch's permutation, which is the same on every
        rank; the gradients are averaged with one allreduce per step, weighted by shard size when the
        shards are uneven (the last batch of an epoch, or a batch that the ranks do not divide), so a step
        equals one process's step on the whole batch up to rounding. At the start every rank takes rank 0's
        parameters, optimizer state and random states (batch order, NumPy's global generator that dropout
        draws from, augmentation): the ranks draw the same dropout masks and augmentations for the same
        positions of their shards. Metrics (loss, accuracies, examples/s) are reduced over the ranks; the
        per-epoch and final evaluations are sharded and reduced. Only rank 0 prints and writes checkpoints;
        ``resume`` has rank 0 read the checkpoint and send it to every rank. Batch-norm running statistics
        are averaged over the ranks before each evaluation and checkpoint. The parameters are checked to be
        bit-identical on every rank after each epoch. Ctrl-C on any rank stops every rank after the same
        step. An exception on one rank ends the job (:func:`fastconv.distributed.init`). Outside
        ``mpiexec`` this is one rank.
    batch_per_rank : bool, optional
        With ``distributed``: False (default), ``mini_batch_size`` is the global batch, split over the
        ranks (the same steps whatever the number of ranks); True, each rank takes ``mini_batch_size``
        examples per step, the global batch being ``mini_batch_size`` times the number of ranks.
    precision : {None, "float32", "float16", "bfloat16"}, optional
        None (default): train in the network's own dtype. ``"float16"`` / ``"bfloat16"``: mixed-precision
        training (:mod:`fastconv.precision`) of a network built in that dtype (``DeepConvNet(dtype=np.float16)``,
        ``fastconv.models.build(name, dtype="float16")``): forward and backward run in it, the optimizer updates
        float32 master weights, and with float16 the loss is scaled dynamically (steps with an inf/NaN
        gradient are skipped and the scale backs off). The training and test data are converted to the
        network's dtype once, here. ``"float32"`` checks that the network is float32.

    Attributes
    ----------
    train_loss_list : list of float
        Loss of every step (a NaN/Inf one included when training diverged).
    train_acc_list, test_acc_list : list of float
        Accuracy after every epoch (inference mode, ``evaluate_sample_num_per_epoch`` examples).
    train_eval_loss_list, test_loss_list : list of float or None
        Cross-entropy after every epoch, evaluated as the accuracies (None for a network without
        ``predict``).
    current_iter, current_epoch, iter_per_epoch, max_iter : int
        Steps done, epochs done, steps per epoch, steps in all.
    final_test_acc, final_test_loss : float or None
        Accuracy and cross-entropy on the whole test set, after :meth:`train`.
    interrupted : bool
        True when :meth:`train` stopped on Ctrl-C (after writing a checkpoint).
    batch_size : int
        The global batch: examples per step over all ranks.
    rank, ranks : int
        This process's rank and the number of ranks (0 and 1 unless ``distributed``).
    mixed : fastconv.precision.MixedPrecision or None
        The master weights and loss scaler of a float16 / bfloat16 run.
    loss_scale_list, skipped_steps_list : list
        Mixed precision: the loss scale at the end of each epoch, and the steps skipped in it.
    """

    def __init__(
        self,
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=20,
        mini_batch_size=100,
        optimizer="SGD",
        optimizer_param={"lr": 0.01},  # noqa: B006 (the book's signature; never mutated)
        evaluate_sample_num_per_epoch=None,
        verbose=True,
        *,
        sampling="shuffle",
        lr_schedule=None,
        lr_schedule_param=None,
        augment=None,
        checkpoint_dir=None,
        resume=False,
        seed=None,
        progress=True,
        keep_checkpoints=3,
        loss_after_update=False,
        eval_batch_size=100,
        checkpoint_interval=300.0,
        on_epoch_end=None,
        distributed=False,
        batch_per_rank=False,
        precision=None,
    ):
        for attr in ("params", "gradient", "loss", "accuracy"):
            if not hasattr(network, attr):
                raise TypeError(
                    f"network: expected a network with params, gradient, loss and accuracy; "
                    f"{type(network).__name__} has no {attr!r}"
                )
        self.network = network
        self.x_train, self.t_train = self._data(x_train, t_train, "x_train", "t_train")
        self.x_test, self.t_test = self._data(x_test, t_test, "x_test", "t_test")
        self.precision = precision
        self.mixed = None
        if precision is not None:
            want = _precision.dtype_of(precision)
            have = {v.dtype for v in network.params.values()}
            if have != {want}:
                raise ValueError(
                    f"precision: {precision!r} needs a network built in {precision}, this one's parameters are "
                    f"{', '.join(sorted(str(d) for d in have))} (build it with dtype={precision!r})"
                )
            if want != np.float32:
                self.mixed = _precision.MixedPrecision(network.params)
                # the data in the network's dtype, converted once (not per batch)
                self.x_train = self.x_train.astype(want, copy=False)
                self.x_test = self.x_test.astype(want, copy=False)
        self.loss_scale_list = []
        self.skipped_steps_list = []
        self._epoch_skipped = 0
        if len(self.x_train) == 0:
            raise ValueError("x_train: no training examples")
        self.epochs = _int_arg(epochs, "epochs", 1)
        self.batch_size = _int_arg(mini_batch_size, "mini_batch_size", 1)
        self.distributed = bool(distributed)
        self.batch_per_rank = bool(batch_per_rank)
        self._dist = None
        self.rank, self.ranks = 0, 1
        if self.distributed:
            from . import distributed as _distributed

            _distributed.init()
            self._dist = _distributed
            self.rank, self.ranks = _distributed.rank(), _distributed.size()
        if self.batch_per_rank:
            self.batch_size *= self.ranks
        if evaluate_sample_num_per_epoch is not None:
            evaluate_sample_num_per_epoch = _int_arg(
                evaluate_sample_num_per_epoch, "evaluate_sample_num_per_epoch", 1
            )
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.eval_batch_size = _int_arg(eval_batch_size, "eval_batch_size", 1)
        self.verbose = bool(verbose) and self.rank == 0  # one rank speaks
        self.progress = bool(progress)
        self.loss_after_update = bool(loss_after_update)
        if sampling not in ("shuffle", "replace"):
            raise ValueError(f"sampling: expected 'shuffle' or 'replace', got {sampling!r}")
        self.sampling = sampling
        if augment is not None and not callable(augment):
            raise TypeError(f"augment: expected a callable augment(x_batch), got {type(augment).__name__}")
        self.augment = augment
        if keep_checkpoints is not None:
            keep_checkpoints = _int_arg(keep_checkpoints, "keep_checkpoints", 1)
        self.keep_checkpoints = keep_checkpoints
        if checkpoint_interval is not None:
            checkpoint_interval = _nonneg_float(checkpoint_interval, "checkpoint_interval")
        self.checkpoint_interval = checkpoint_interval
        if on_epoch_end is not None and not callable(on_epoch_end):
            raise TypeError(f"on_epoch_end: expected a callable, got {type(on_epoch_end).__name__}")
        self.on_epoch_end = on_epoch_end
        self.interrupted = False

        if isinstance(optimizer, str):
            self.optimizer = make_optimizer(optimizer, optimizer_param)
        elif callable(getattr(optimizer, "update", None)):
            self.optimizer = optimizer
        else:
            raise TypeError(
                f"optimizer: expected a name or an object with update(params, grads), "
                f"got {type(optimizer).__name__}"
            )
        self.base_lr = getattr(self.optimizer, "lr", None)

        self.train_size = len(self.x_train)
        # The book: iter_per_epoch = max(train_size / mini_batch_size, 1); here a whole number of steps
        # (the same value whenever the sizes divide), so that epochs end on a step.
        self.iter_per_epoch = max(-(-self.train_size // self.batch_size), 1)
        self.max_iter = self.epochs * self.iter_per_epoch
        self.current_iter = 0
        self.current_epoch = 0
        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []
        self.train_eval_loss_list = []
        self.test_loss_list = []
        self.epoch_loss_list = []
        self.epoch_running_acc_list = []
        self.epoch_time_list = []
        self.examples_per_sec_list = []
        self.lr_list = []
        self.final_test_acc = None
        self.final_test_loss = None

        self._schedule = self._make_schedule(lr_schedule, lr_schedule_param)
        self.rng = np.random.default_rng(seed)
        self._perm = None
        self._epoch_steps = 0
        self._epoch_loss_sum = 0.0
        self._epoch_correct = 0
        self._epoch_seen = 0
        self._epoch_train_time = 0.0
        self._updater = self.optimizer
        if self._dist is not None:
            self._updater = self._dist.DistributedOptimizer(self.optimizer)
        self._agreed_stop = self._agreed_due = False  # distributed: the ranks' decisions after the last step
        self._sigint = []

        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.last_checkpoint = None
        self._checkpoint_iter = None  # current_iter of the last checkpoint written or restored
        self._checkpoint_time = time.monotonic()
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume: needs checkpoint_dir")
        if self.checkpoint_dir is not None:
            # Rank 0 alone touches the directory; what it found (or the error it met) goes to every rank.
            outcome = None
            if self.rank == 0:
                try:
                    outcome = self._prepare_checkpoint_dir(resume)
                except OSError as exc:
                    outcome = ("error", exc)
            outcome = self._from_rank0(outcome)
            if outcome[0] == "error":
                raise outcome[1]
            if outcome[0] == "resume":
                _checkpoint.resume_from(self, outcome[1], warn=self.rank == 0)
            elif resume:
                self._say(f"resume: no checkpoint in {self.checkpoint_dir}, starting from scratch")
        if self._dist is not None:
            self._start_equal()

    # --------------------------------------------------------------------------------------------------
    # set-up helpers

    def _prepare_checkpoint_dir(self, resume):
        """Make the directory, clean it; ("resume", newest_readable(...)) or ("fresh", None)."""
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        _remove_stale_temporaries(self.checkpoint_dir)
        found = _list_checkpoints(self.checkpoint_dir)
        if resume and found:
            return "resume", _checkpoint.newest_readable(found)
        if not resume:
            for _, path in found:
                os.unlink(path)
        return "fresh", None

    # --------------------------------------------------------------------------------------------------
    # several ranks (fastconv.distributed): the only calls to it

    def _from_rank0(self, obj):
        """Rank 0's ``obj`` on every rank (``obj`` itself with one rank)."""
        return obj if self._dist is None else self._dist.broadcast_object(obj)

    def _start_equal(self):
        """Give every rank rank 0's parameters, layer buffers, optimizer state and random states."""
        dist = self._dist
        dist.broadcast_params(self.network.params)
        buffers = _checkpoint.layer_buffers(self)
        if buffers:
            dist.broadcast_params(buffers)
        if callable(getattr(self.optimizer, "state_dict", None)):
            dist.broadcast_optimizer(self.optimizer)
        _checkpoint.set_rng_states(self, dist.broadcast_object(_checkpoint.rng_states(self)))

    def _sync_buffers(self):
        """Average the layers' running statistics over the ranks (each rank updated them on its shard)."""
        buffers = _checkpoint.layer_buffers(self) if self._dist is not None else None
        if buffers:
            self._dist.allreduce_mean(buffers)

    def _check_equal(self):
        """Raise on every rank when the ranks' parameters differ (they are bit-identical by construction)."""
        digest = hashlib.blake2b(digest_size=16)
        for key in sorted(self.network.params):
            digest.update(np.ascontiguousarray(self.network.params[key]).tobytes())
        digests = self._dist.allgather(digest.hexdigest())
        if len(set(digests)) > 1:
            raise RuntimeError(
                f"distributed: the ranks' parameters differ after epoch {self.current_epoch} "
                f"(digests {digests}); the ranks must run the same network on the same data"
            )

    def _agree(self, values):
        """Sum ``values`` over the ranks (one small allreduce)."""
        return self._dist.reduce_sum(values)

    @staticmethod
    def _data(x, t, xname, tname):
        if x is None or t is None:
            raise TypeError(f"{xname if x is None else tname}: expected an array, got None")
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        t = t if isinstance(t, np.ndarray) else np.asarray(t)
        if x.ndim < 1 or t.ndim < 1:
            raise ValueError(f"{xname if x.ndim < 1 else tname}: expected at least 1 dimension, got a scalar")
        if len(x) != len(t):
            raise ValueError(f"{tname}: has {len(t)} examples, {xname} has {len(x)}")
        return x, t

    def _make_schedule(self, lr_schedule, param):
        param = {} if param is None else dict(param)
        if not isinstance(param, dict):
            raise TypeError(f"lr_schedule_param: expected a dict, got {type(param).__name__}")
        warmup = param.pop("warmup_epochs", 0)
        if lr_schedule is None or lr_schedule == "none":
            schedule = None
        elif lr_schedule == "step":
            schedule = step_schedule(
                param.pop("step_size", max(1, self.epochs // 4)), param.pop("gamma", 0.5)
            )
        elif lr_schedule == "cosine":
            schedule = cosine_schedule(param.pop("epochs", self.epochs), param.pop("min_factor", 0.0))
        elif callable(lr_schedule):
            schedule = lr_schedule
        else:
            raise ValueError(
                f"lr_schedule: expected None, 'step', 'cosine' or a callable, got {lr_schedule!r}"
            )
        if param:
            raise ValueError(
                f"lr_schedule_param: unknown keys {sorted(param)} for lr_schedule={lr_schedule!r}"
            )
        if _nonneg_float(warmup, "warmup_epochs") > 0:
            schedule = _with_warmup(schedule or (lambda epoch: 1.0), float(warmup), self.iter_per_epoch)
        if schedule is not None and self.base_lr is None:
            raise ValueError("lr_schedule: the optimizer has no 'lr' attribute to schedule")
        return schedule

    def _say(self, text):
        if self.verbose:
            print(text, flush=True)

    # --------------------------------------------------------------------------------------------------
    # one step

    def _next_batch(self):
        step = self.current_iter % self.iter_per_epoch
        if self.sampling == "replace":
            return self.rng.integers(0, self.train_size, size=self.batch_size)
        if step == 0 or self._perm is None:
            self._perm = self.rng.permutation(self.train_size)
        return self._perm[step * self.batch_size : (step + 1) * self.batch_size]

    def _last_layer_loss(self):
        last = getattr(self.network, "last_layer", None)
        loss = getattr(last, "loss", None)
        if isinstance(loss, (numbers.Real, np.ndarray)) and np.ndim(loss) == 0:
            return float(loss)
        return None

    def _count_correct(self, t_batch):
        """Correct predictions of the last forward pass (softmax output ``last_layer.y``), or None."""
        y = getattr(getattr(self.network, "last_layer", None), "y", None)
        if not isinstance(y, np.ndarray) or y.ndim != 2 or y.shape[0] != len(t_batch):
            return None
        labels = t_batch if t_batch.ndim == 1 else np.argmax(t_batch, axis=1)
        return int(np.count_nonzero(np.argmax(y, axis=1) == labels))

    def _diverged(self, loss, what):
        it = self.current_iter
        ckpt = self.last_checkpoint
        where = (
            f"last good checkpoint: {ckpt}"
            if ckpt
            else "no checkpoint was written" + ("" if self.checkpoint_dir else " (checkpoint_dir not set)")
        )
        lr = getattr(self.optimizer, "lr", None)
        raise TrainingDiverged(
            f"training diverged at iteration {it} (epoch {it // self.iter_per_epoch + 1}): {what} "
            f"(lr={lr}); stopped before updating the parameters with it; {where}",
            iteration=it,
            loss=loss,
            checkpoint=ckpt,
        )

    def train_step(self):
        """Do one step: draw a batch, compute the gradient, update the parameters; after the last step of an
        epoch evaluate the accuracies (and write a checkpoint), as the book's ``train_step`` does.

        Raises
        ------
        TrainingDiverged
            When the loss or a gradient is NaN or Inf (the parameters are left as they were before it).
        """
        self._step()
        if self.current_iter % self.iter_per_epoch == 0:
            self._end_epoch()

    def _step(self):
        if self.current_iter >= self.max_iter:
            raise RuntimeError(f"train_step: all {self.max_iter} iterations are done")
        t0 = time.perf_counter()
        if self._schedule is not None:
            factor = self._schedule(self.current_iter / self.iter_per_epoch)
            if (
                isinstance(factor, bool)
                or not isinstance(factor, numbers.Real)
                or not math.isfinite(factor)
                or factor < 0
            ):
                raise ValueError(f"lr_schedule: returned {factor!r}, expected a finite number >= 0")
            self.optimizer.lr = self.base_lr * float(factor)

        idx = self._next_batch()
        batch = len(idx)
        if self._dist is not None:
            idx = self._dist.shard(idx, self.rank, self.ranks)
        n = len(idx)  # this rank's examples: the whole batch with one rank, none when batch < ranks
        x_batch = self.x_train[idx]
        t_batch = self.t_train[idx]
        if self.augment is not None and n:
            augmented = self.augment(x_batch)
            if getattr(augmented, "shape", None) != x_batch.shape:
                raise ValueError(
                    f"augment: returned shape {getattr(augmented, 'shape', None)}, "
                    f"expected the batch's {x_batch.shape}"
                )
            x_batch = augmented

        mixed = self.mixed
        if mixed is not None:
            last = getattr(self.network, "last_layer", None)
            if mixed.scaler is not None and not hasattr(last, "loss_scale"):
                raise TypeError(
                    f"precision: float16 training scales the loss at network.last_layer, which has no "
                    f"loss_scale ({type(last).__name__}); use a fastconv loss layer"
                )
            if last is not None and hasattr(last, "loss_scale"):
                last.loss_scale = mixed.loss_scale
        if n:
            grads = self.network.gradient(x_batch, t_batch)
            loss = None if self.loss_after_update else self._last_layer_loss()
        else:
            grads = {k: np.zeros_like(v) for k, v in self.network.params.items()}
            loss = None
        if mixed is not None:
            grads = mixed.unscale(grads)  # float32, divided by the loss scale
        bad = _precision.first_non_finite(grads)
        if mixed is not None and mixed.scaler is not None:
            bad = None  # float16: a non-finite gradient skips the step (below) instead of ending the run
        bad = None if bad is None else f"gradient {bad!r} is not finite"
        correct = None if loss is None else self._count_correct(t_batch)
        if self._dist is not None:
            loss, correct, bad = self._agree_step(loss, correct, bad, n, batch)
        if loss is not None and not math.isfinite(loss):
            self.train_loss_list.append(loss)
            self._diverged(loss, f"loss is {loss}")
        if bad is not None:
            if loss is not None:
                self.train_loss_list.append(loss)
            self._diverged(loss, bad)
        weight = None if self._dist is None or batch % self.ranks == 0 else n / batch
        if mixed is not None:
            # the ranks' float32 gradients are averaged first, so they all see the same inf and skip alike
            if self._dist is not None:
                self._updater.average(grads, weight)
            if not mixed.step(self.network.params, grads, self.optimizer.update):
                self._epoch_skipped += 1
        elif self._dist is None:
            self.optimizer.update(self.network.params, grads)
        else:  # shards of unequal sizes: each rank's mean gradient weighted by its share of the batch
            self._updater.update(self.network.params, grads, weight=weight)
        if loss is None:
            # The book's order: the loss of the batch after the update (an extra forward pass).
            loss = float(self.network.loss(x_batch, t_batch)) if n else 0.0
            correct = self._count_correct(t_batch) if n else 0
            if self._dist is not None:
                total = self._agree([loss * n, correct or 0, n and correct is None])
                loss = float(total[0]) / batch
                correct = None if total[2] else int(total[1])
            if not math.isfinite(loss):
                self.train_loss_list.append(loss)
                self._diverged(loss, f"loss after the update is {loss}")
        self.train_loss_list.append(loss)

        self._epoch_steps += 1
        self._epoch_loss_sum += loss
        self._epoch_seen += batch
        if correct is not None and self._epoch_correct is not None:
            self._epoch_correct += correct
        else:
            self._epoch_correct = None
        self._epoch_train_time += time.perf_counter() - t0
        self.current_iter += 1

    def _agree_step(self, loss, correct, bad, n, batch):
        """The batch's (loss, correct, what is not finite) from every rank's shard, and the ranks' decisions
        to stop (Ctrl-C on any rank) and to checkpoint (rank 0's clock), in one small allreduce."""
        due = (
            self.rank == 0
            and self.checkpoint_dir is not None
            and self.checkpoint_interval is not None
            and time.monotonic() - self._checkpoint_time >= self.checkpoint_interval
        )
        total = self._agree([
            0.0 if loss is None else loss * n,
            correct or 0,
            n > 0 and loss is None,  # loss after the update (loss_after_update, or no last_layer.loss)
            n > 0 and correct is None,
            bad is not None,
            bool(self._sigint),
            due,
        ])
        self._agreed_stop, self._agreed_due = bool(total[5]), bool(total[6])
        loss = None if total[2] else float(total[0]) / batch
        correct = None if total[2] or total[3] else int(total[1])
        if total[4]:
            bad = f"a gradient is not finite on {int(total[4])} of {self.ranks} ranks"
        return loss, correct, bad

    def _running_text(self):
        """The running means of this epoch so far, labelled: what the optimizer saw, in training mode."""
        text = "running"
        if self._epoch_correct is not None and self._epoch_seen:
            text += f" acc {self._epoch_correct / self._epoch_seen:.4f}"
        return text + f" loss {self._epoch_loss_sum / max(self._epoch_steps, 1):.4f} (training mode)"

    def _status_text(self):
        rate = self._epoch_seen / self._epoch_train_time if self._epoch_train_time > 0 else 0.0
        return f"{self._running_text()}  {rate:,.0f} ex/s"

    # --------------------------------------------------------------------------------------------------
    # epochs

    def _accuracy(self, x, t):
        return float(self.network.accuracy(x, t, batch_size=self.eval_batch_size))

    def _inference(self):
        """``x -> scores`` in inference mode (``predict(x, train_flg=False)``); None without ``predict``."""
        predict = getattr(self.network, "predict", None)
        if not callable(predict):
            return None
        try:
            parameters = inspect.signature(predict).parameters
        except (TypeError, ValueError):
            return predict
        if "train_flg" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return lambda x: predict(x, train_flg=False)
        return predict  # the book's SimpleConvNet: predict(x) has no training mode

    def _evaluate(self, x, t):
        """(accuracy, mean cross-entropy or None) of the network in inference mode on ``x``, ``t``.

        One pass of ``predict`` gives both (the accuracy is the book's: argmax of the scores against the
        labels); a network without ``predict``, or whose scores are not (N, classes), gets its own
        ``accuracy`` and no loss. Distributed: each rank evaluates its contiguous shard of ``x`` and the
        counts and loss sums are added over the ranks.
        """
        if len(x) == 0:
            return float("nan"), None
        if self._dist is None:
            correct, loss_sum, accuracy = self._evaluate_sums(x, t)
            if accuracy is not None:
                return accuracy, None
        else:
            part = self._dist.shard(np.arange(len(x)), self.rank, self.ranks)
            lo, hi = (int(part[0]), int(part[-1]) + 1) if len(part) else (0, 0)
            correct, loss_sum, _ = self._evaluate_sums(x[lo:hi], t[lo:hi]) if hi > lo else (0, 0.0, None)
            total = self._agree([correct, 0.0 if loss_sum is None else loss_sum, loss_sum is None])
            correct, loss_sum = float(total[0]), None if total[2] else float(total[1])
            if loss_sum is None:
                return correct / len(x), None
        loss = loss_sum / len(x)
        return correct / len(x), (loss if math.isfinite(loss) else None)

    def _evaluate_sums(self, x, t):
        """(correct count, summed cross-entropy, None) on ``x`` (not empty), as :meth:`_evaluate` says; or
        (``accuracy * len(x)``, None, accuracy) when the network's own ``accuracy`` gives it."""
        predict = self._inference()
        if predict is None:
            accuracy = self._accuracy(x, t)
            return accuracy * len(x), None, accuracy
        labels = t if t.ndim == 1 else np.argmax(t, axis=1)
        correct, loss_sum = 0, 0.0
        for i in range(0, len(x), self.eval_batch_size):
            tt = labels[i : i + self.eval_batch_size]
            y = np.asarray(predict(x[i : i + self.eval_batch_size]))
            if (
                y.ndim != 2
                or y.shape[0] != len(tt)
                or tt.max(initial=0) >= y.shape[1]
                or tt.min(initial=0) < 0
            ):
                accuracy = self._accuracy(x, t)
                return accuracy * len(x), None, accuracy
            correct += int(np.count_nonzero(np.argmax(y, axis=1) == tt))
            z = y.astype(np.float64) - np.max(y, axis=1, keepdims=True)
            loss_sum += float(np.sum(np.log(np.sum(np.exp(z), axis=1)) - z[np.arange(len(tt)), tt]))
        return correct, loss_sum, None

    def _end_epoch(self):
        self.current_epoch += 1
        n = self.evaluate_sample_num_per_epoch
        x_tr, t_tr, x_te, t_te = self.x_train, self.t_train, self.x_test, self.t_test
        if n is not None:
            x_tr, t_tr, x_te, t_te = x_tr[:n], t_tr[:n], x_te[:n], t_te[:n]
        if self._dist is not None:
            self._sync_buffers()
            self._check_equal()
        t0 = time.perf_counter()
        train_acc, train_loss = self._evaluate(x_tr, t_tr)
        test_acc, test_loss = self._evaluate(x_te, t_te)
        eval_time = time.perf_counter() - t0
        running = self._running_text()
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        self.train_eval_loss_list.append(train_loss)
        self.test_loss_list.append(test_loss)
        self.epoch_loss_list.append(self._epoch_loss_sum / max(self._epoch_steps, 1))
        self.epoch_running_acc_list.append(
            None if self._epoch_correct is None else self._epoch_correct / max(self._epoch_seen, 1)
        )
        rate = self._epoch_seen / self._epoch_train_time if self._epoch_train_time > 0 else 0.0
        self.examples_per_sec_list.append(rate)
        self.epoch_time_list.append(self._epoch_train_time + eval_time)
        self.lr_list.append(getattr(self.optimizer, "lr", None))
        if self.mixed is not None:
            self.loss_scale_list.append(self.mixed.loss_scale)
            self.skipped_steps_list.append(self._epoch_skipped)
            self._epoch_skipped = 0
        self._epoch_steps, self._epoch_loss_sum, self._epoch_correct = 0, 0.0, 0
        self._epoch_seen, self._epoch_train_time = 0, 0.0

        def metric(acc, loss):
            return f"acc {acc:.4f}" + ("" if loss is None else f" loss {loss:.4f}")

        first_te = "" if len(x_te) == len(self.x_test) else f" (first {len(x_te):,})"
        first_tr = "" if len(x_tr) == len(self.x_train) else f", first {len(x_tr):,}"
        self._say(
            f"epoch {self.current_epoch}/{self.epochs}: test {metric(test_acc, test_loss)}{first_te} | "
            f"train {metric(train_acc, train_loss)} (inference mode{first_tr}) | {running} | "
            f"{rate:,.0f} ex/s, {self.epoch_time_list[-1]:.1f} s"
        )
        if self.checkpoint_dir is not None:
            self.save_checkpoint()
        if self.on_epoch_end is not None:
            self.on_epoch_end(self)

    @contextlib.contextmanager
    def _deferred_interrupt(self):
        """Within: the first SIGINT only sets a flag (the loop checkpoints and stops after the step), a second
        one raises at once. Only with a checkpoint_dir, in the main thread, over Python's default handler."""
        flag = []
        if self.checkpoint_dir is None or threading.current_thread() is not threading.main_thread():
            yield flag
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:  # ignored (nohup, a background job) or the user's own
            yield flag
            return

        def handler(signum, frame):
            flag.append(signum)
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, handler)
        try:
            yield flag
        finally:
            signal.signal(signal.SIGINT, previous)

    def _checkpoint_due(self):
        """Whether to write a checkpoint in the middle of the epoch now (distributed: rank 0's clock)."""
        if self._dist is not None:
            return self._agreed_due
        return (
            self.checkpoint_dir is not None
            and self.checkpoint_interval is not None
            and time.monotonic() - self._checkpoint_time >= self.checkpoint_interval
        )

    def _stop_interrupted(self):
        """Checkpoint the state after the last whole step (unless that is written already), then raise."""
        self.interrupted = True
        if self.checkpoint_dir is not None and self._checkpoint_iter != self.current_iter:
            self.save_checkpoint()
        raise KeyboardInterrupt

    def train(self):
        """Train until ``max_iter`` steps are done, then evaluate on the whole test set.

        Returns
        -------
        dict
            :attr:`history`.

        Raises
        ------
        TrainingDiverged
            When the loss or a gradient became NaN or Inf.
        KeyboardInterrupt
            On Ctrl-C; with a ``checkpoint_dir``, after the current step and a checkpoint of its state.
        """
        show = self.progress and self.verbose
        self.interrupted = False
        self._checkpoint_time = time.monotonic()
        self._agreed_stop = self._agreed_due = False
        with self._deferred_interrupt() as flag:
            self._sigint = flag

            def stop():  # every rank stops after the same step: on the ranks' agreed decision
                return self._agreed_stop if self._dist is not None else bool(flag)

            while self.current_iter < self.max_iter:
                bar = _progress(show, self.iter_per_epoch, f"epoch {self.current_epoch + 1}/{self.epochs}")
                try:
                    while True:
                        self._step()
                        done = self.current_iter % self.iter_per_epoch or self.iter_per_epoch
                        bar.update(done, self._status_text())
                        if done == self.iter_per_epoch or stop():
                            break
                        if self._checkpoint_due():
                            self.save_checkpoint()
                finally:
                    bar.close()
                if self.current_iter % self.iter_per_epoch == 0:
                    self._end_epoch()
                if stop():
                    self._stop_interrupted()
            self._sync_buffers()
            self.final_test_acc, self.final_test_loss = (
                self._evaluate(self.x_test, self.t_test) if len(self.x_test) else (None, None)
            )
            if stop():
                self._stop_interrupted()
        if self.final_test_acc is not None:
            self._say(f"final test accuracy {self.final_test_acc:.4f} ({len(self.x_test):,} images)")
        return self.history

    # --------------------------------------------------------------------------------------------------
    # history and curves

    @property
    def history(self):
        """The run so far as a JSON-able dict (NaN/Inf values become None)."""
        return _history.history(self)

    def save_history(self, path, extra=None):
        """Write :attr:`history` to ``path`` as JSON (strict: no NaN), atomically.

        Parameters
        ----------
        path : str or path
            Destination file.
        extra : dict, optional
            More JSON-able entries to store beside the history (e.g. the run's configuration).
        """
        _history.save_history(self, path, extra)

    def plot(self, path, *, title=None):
        """Save the loss and accuracy curves as a PNG: a figure for a report.

        Left: the training loss of every step (training mode: what the optimizer saw, dropout on) with its
        running mean over a tenth of an epoch, and the per-epoch train and test loss in inference mode.
        Right: the per-epoch train and test accuracy (inference mode), the axis zoomed to the values. The
        x axes count epochs; the legends sit under the axes, off the curves.

        Parameters
        ----------
        path : str or path
            Destination file (written atomically).
        title : str, optional
            The figure's title (default: the network's class name and the final test accuracy).

        Raises
        ------
        ImportError
            When matplotlib is not installed (``pip install "fastconv[plot]"``).
        """
        _history.plot(self, path, title=title)

    def figure(self, *, title=None):
        """The :meth:`plot` figure, a ``matplotlib.figure.Figure`` (with an Agg canvas; pyplot untouched)."""
        return _history.figure(self, title=title)

    def result_text(self):
        """``"test accuracy 91.23% (10,000 images) after 5 epochs"``: the run's result in words."""
        return _history.result_text(self)

    # --------------------------------------------------------------------------------------------------
    # checkpoints

    def save_checkpoint(self, path=None):
        """Write a checkpoint (parameters, optimizer state, counters, histories, RNG states).

        Parameters
        ----------
        path : str or path, optional
            Destination; default ``checkpoint_dir/epoch-NNNN.npz`` at the end of an epoch, else
            ``checkpoint_dir/epoch-NNNN-step-SSSSSS.npz`` (then older checkpoints beyond ``keep_checkpoints``,
            and older mid-epoch ones, are removed).

        Returns
        -------
        str
            The path written (distributed: rank 0 writes it; the other ranks only take part in averaging
            the batch-norm running statistics and return the same path).
        """
        if self._dist is not None:
            self._sync_buffers()
            if self.rank != 0:
                self.last_checkpoint = _checkpoint.default_path(self) if path is None else os.fspath(path)
                self._checkpoint_iter = self.current_iter
                self._checkpoint_time = time.monotonic()
                return self.last_checkpoint
        return _checkpoint.save(self, path)

    def load_checkpoint(self, path):
        """Restore the state saved by :meth:`save_checkpoint` into this trainer, its network and optimizer.

        Parameters
        ----------
        path : str or path
            A checkpoint file.

        Raises
        ------
        ValueError
            When the file cannot be read as a checkpoint (empty, truncated, not one), or the checkpoint
            does not match the network, optimizer or data of this trainer.
        OSError
            When the file cannot be opened.

        Notes
        -----
        Distributed: rank 0 reads the file and sends its bytes to every rank; every rank restores them.
        """
        if self._dist is None:
            _checkpoint.load(self, path)
            return
        raw = None
        if self.rank == 0:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError as exc:
                raw = exc
        raw = self._from_rank0(raw)
        if isinstance(raw, OSError):
            raise raw
        _checkpoint.load(self, path, raw)
