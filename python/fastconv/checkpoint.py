"""Checkpoints of :class:`fastconv.trainer.Trainer`: naming, listing, stale-temporary cleanup, reading,
writing, pruning and restoring.

Checkpoints are single ``.npz`` files (``allow_pickle=False``), written by
:func:`fastconv._atomic.atomic_write` (temporary file, fsync, rename, fsync of the directory): parameters under
``param/<key>``, optimizer state arrays under ``opt/<attr>/<key>``, NumPy's global RNG key under
``np_random/keys`` and everything else (counters, histories, RNG states, optimizer scalars) as JSON in
``__meta__``.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import warnings
import zipfile

import numpy as np

from . import io as _io
from ._atomic import atomic_write, temp_target


def _augment_rng(augment):
    """The np.random.Generator an augmenter draws from (attribute ``rng`` or ``_rng``), if any."""
    for name in ("rng", "_rng"):
        rng = getattr(augment, name, None)
        if isinstance(rng, np.random.Generator):
            return rng
    return None


def _layer_list(network):
    """The network's layers in order (``layers`` as the book's OrderedDict or list), else []."""
    layers = getattr(network, "layers", None)
    if isinstance(layers, dict):
        return list(layers.values())
    if isinstance(layers, (list, tuple)):
        return list(layers)
    return []


# Non-trainable layer state that a checkpoint must carry for an exact resume: batch-norm running statistics.
_LAYER_BUFFERS = ("running_mean", "running_var")


# Checkpoint names: ``epoch-NNNN.npz`` after NNNN whole epochs; ``epoch-NNNN-step-SSSSSS.npz`` after NNNN
# epochs and SSSSSS steps of the next one (written on Ctrl-C and every ``checkpoint_interval`` seconds).
_CKPT_RE = re.compile(r"^epoch-(\d{4,})(?:-step-(\d{6,}))?\.npz$")
_CKPT_FORMAT = "fastconv-trainer-checkpoint"


def _ckpt_name(epoch, step=0):
    return f"epoch-{epoch:04d}.npz" if step == 0 else f"epoch-{epoch:04d}-step-{step:06d}.npz"


def _list_checkpoints(directory):
    """((epochs, steps), path) of the checkpoints in ``directory``, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _CKPT_RE.match(name)
        if m:
            found.append(((int(m.group(1)), int(m.group(2) or 0)), os.path.join(directory, name)))
    return sorted(found)


# What the Trainer's writer before fastconv._atomic left behind when killed mid-checkpoint:
# tempfile.mkstemp(prefix=".tmp-", suffix=<checkpoint name>).
_LEGACY_TMP_RE = re.compile(r"^\.tmp-[a-z0-9_]{8}(epoch-\d{4,}\.npz)$")


def _remove_stale_temporaries(directory):
    """Remove the temporary files that a killed checkpoint write left in ``directory``.

    Only names of the form the checkpoint writer produces for a checkpoint (``.epoch-NNNN.npz.<8 hex>.tmp``,
    ``.epoch-NNNN-step-SSSSSS.npz.<8 hex>.tmp``, and the older ``.tmp-<8 chars>epoch-NNNN.npz``) are removed;
    every other file stays.
    """
    for name in os.listdir(directory):
        target = temp_target(name)
        if target is None:
            m = _LEGACY_TMP_RE.match(name)
            target = None if m is None else m.group(1)
        if target is not None and _CKPT_RE.match(target):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass


class _UnreadableCheckpoint(ValueError):
    """A checkpoint file that cannot be read at all (empty, truncated, not an .npz): resume skips it."""


def _read_checkpoint(path, raw=None):
    """(meta, arrays) of a checkpoint file, or of its bytes ``raw`` (read by rank 0 of a distributed run);
    _UnreadableCheckpoint when its content cannot be read."""
    # The file is opened here, not by np.load, which leaves it open when the zip directory is unreadable.
    with open(path, "rb") if raw is None else io.BytesIO(raw) as f:
        try:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):  # a lone .npy array
                raise _UnreadableCheckpoint(f"{path}: not a fastconv trainer checkpoint")
            with data:
                if "__meta__" not in data.files:
                    raise _UnreadableCheckpoint(f"{path}: not a fastconv trainer checkpoint")
                meta = json.loads(str(data["__meta__"]))
                arrays = {k: data[k] for k in data.files if k != "__meta__"}
        except _UnreadableCheckpoint:
            raise
        except (ValueError, EOFError, zipfile.BadZipFile) as exc:
            # np.load: EOFError for an empty file, BadZipFile for a truncated one or a bad CRC, ValueError
            # for other bytes; json: ValueError
            reason = str(exc) or type(exc).__name__
            raise _UnreadableCheckpoint(f"{path}: cannot read checkpoint ({reason})") from exc
    if not isinstance(meta, dict) or meta.get("format") != _CKPT_FORMAT:
        raise _UnreadableCheckpoint(f"{path}: not a fastconv trainer checkpoint")
    return meta, arrays


def newest_readable(found):
    """(path, bytes, skipped) of the newest checkpoint of ``found`` that can be read; path and bytes are None
    when none can. ``skipped`` lists, newest first, why each newer one could not be read."""
    skipped = []
    for _, path in reversed(found):
        try:
            with open(path, "rb") as f:
                raw = f.read()
            _read_checkpoint(path, raw)
        except (OSError, _UnreadableCheckpoint) as exc:
            skipped.append(str(exc) if isinstance(exc, ValueError) else f"{path}: {exc.strerror or exc}")
            continue
        return path, raw, skipped
    return None, None, skipped


def resume_from(trainer, picked, warn=True):
    """Restore the checkpoint that :func:`newest_readable` ``picked``, with one warning (when ``warn``) naming
    the newer ones it skipped.

    A checkpoint that reads but does not match this trainer raises ValueError at once: an older one
    would not match either, and silently going back in time would hide the mismatch.
    """
    path, raw, skipped = picked
    if path is None:
        raise ValueError(
            f"resume: no checkpoint in {trainer.checkpoint_dir} can be read: " + "; ".join(skipped)
        )
    meta, arrays = _read_checkpoint(path, raw)
    if skipped and warn:
        # one warning, before anything is restored (a "error" warnings filter then changes nothing)
        warnings.warn(
            f"resume: skipped {len(skipped)} newer checkpoint{'s' * (len(skipped) > 1)} that cannot "
            f"be read ({'; '.join(skipped)}); resuming from {path}",
            RuntimeWarning,
            stacklevel=3,
        )
    restore(trainer, path, meta, arrays)


def optimizer_state(trainer):
    arrays, scalars, dicts, plain = {}, {}, [], []
    for attr, value in vars(trainer.optimizer).items():
        if isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()):
            dicts.append(attr)
            for key, arr in value.items():
                arrays[f"opt/{attr}/{key}"] = arr
        elif isinstance(value, np.ndarray):
            plain.append(attr)
            arrays[f"opt/{attr}"] = value
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[attr] = value
        elif isinstance(value, np.generic):
            scalars[attr] = value.item()
        else:
            raise TypeError(f"optimizer: cannot checkpoint attribute {attr!r} of type {type(value).__name__}")
    meta = {"class": type(trainer.optimizer).__name__, "scalars": scalars, "dicts": dicts, "arrays": plain}
    return meta, arrays


def default_path(trainer):
    """Where :func:`save` writes without a path: ``checkpoint_dir/epoch-NNNN[-step-SSSSSS].npz``."""
    if trainer.checkpoint_dir is None:
        raise ValueError("path: needed when the trainer has no checkpoint_dir")
    step = trainer.current_iter % trainer.iter_per_epoch
    return os.path.join(trainer.checkpoint_dir, _ckpt_name(trainer.current_epoch, step))


def rng_states(trainer):
    """Every random state a checkpoint carries: the trainer's generator, NumPy's global one, the augmenter's
    and the layers' own generators (a distributed trainer gives rank 0's to every rank)."""
    aug = _augment_rng(trainer.augment)
    layers = {}
    for i, layer in enumerate(_layer_list(trainer.network)):
        rng = getattr(layer, "_rng", None)
        if isinstance(rng, np.random.Generator):
            layers[i] = rng.bit_generator.state
    return {
        "rng": trainer.rng.bit_generator.state,
        "np_random": np.random.get_state(),
        "augment": None if aug is None else aug.bit_generator.state,
        "layers": layers,
    }


def set_rng_states(trainer, states):
    """Set the states :func:`rng_states` returned (of the same network and augmenter)."""
    trainer.rng.bit_generator.state = states["rng"]
    np.random.set_state(states["np_random"])
    aug = _augment_rng(trainer.augment)
    if aug is not None and states["augment"] is not None:
        aug.bit_generator.state = states["augment"]
    layers = _layer_list(trainer.network)
    for i, state in states["layers"].items():
        layers[i]._rng.bit_generator.state = state


def layer_buffers(trainer):
    """The layers' non-trainable arrays a checkpoint carries (batch-norm running statistics), by
    ``"<layer index>/<attribute>"``: the arrays themselves, so that changing them in place changes the
    layers."""
    out = {}
    for i, layer in enumerate(_layer_list(trainer.network)):
        for attr in _LAYER_BUFFERS:
            value = getattr(layer, attr, None)
            if isinstance(value, np.ndarray):
                out[f"{i}/{attr}"] = value
    return out


def save(trainer, path=None):
    """Write a checkpoint of ``trainer``: the work of :meth:`fastconv.trainer.Trainer.save_checkpoint`."""
    default = path is None
    path = default_path(trainer) if default else os.fspath(path)
    opt_meta, arrays = optimizer_state(trainer)
    for key, value in trainer.network.params.items():
        arrays[f"param/{key}"] = _io.storable(value)
    buffers, layer_rngs = {}, {}
    for i, layer in enumerate(_layer_list(trainer.network)):
        for attr in _LAYER_BUFFERS:
            value = getattr(layer, attr, None)
            if isinstance(value, np.ndarray):
                arrays[f"buffer/{i}/{attr}"] = _io.storable(value)
                buffers.setdefault(str(i), []).append(attr)
        rng = getattr(layer, "_rng", None)  # e.g. Dropout(seed=...) has its own generator
        if isinstance(rng, np.random.Generator):
            layer_rngs[str(i)] = rng.bit_generator.state
    np_state = np.random.get_state()
    arrays["np_random/keys"] = np_state[1]
    mid_epoch = trainer.current_iter % trainer.iter_per_epoch != 0
    if mid_epoch and trainer._perm is not None:
        arrays["epoch_perm"] = trainer._perm  # this epoch's order: the rest of it follows it
    aug_rng = _augment_rng(trainer.augment)
    meta = {
        "format": _CKPT_FORMAT,
        "version": 2,
        "current_iter": trainer.current_iter,
        "current_epoch": trainer.current_epoch,
        "iter_per_epoch": trainer.iter_per_epoch,
        "train_size": trainer.train_size,
        "mini_batch_size": trainer.batch_size,
        "sampling": trainer.sampling,
        "base_lr": trainer.base_lr,
        "params": list(trainer.network.params),
        "buffers": buffers,
        "layer_rngs": layer_rngs,
        "optimizer": opt_meta,
        "rng": trainer.rng.bit_generator.state,
        "np_random": {
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "augment_rng": None if aug_rng is None else aug_rng.bit_generator.state,
        # the running sums of the epoch in progress (zero at the end of an epoch)
        "epoch_state": {
            "steps": trainer._epoch_steps,
            "loss_sum": trainer._epoch_loss_sum,
            "correct": trainer._epoch_correct,
            "seen": trainer._epoch_seen,
            "train_time": trainer._epoch_train_time,
        },
        "mixed": None,
        "lists": {
            "loss_scale_list": trainer.loss_scale_list,
            "skipped_steps_list": trainer.skipped_steps_list,
            "train_loss_list": trainer.train_loss_list,
            "train_acc_list": trainer.train_acc_list,
            "test_acc_list": trainer.test_acc_list,
            "train_eval_loss_list": trainer.train_eval_loss_list,
            "test_loss_list": trainer.test_loss_list,
            "epoch_loss_list": trainer.epoch_loss_list,
            "epoch_running_acc_list": trainer.epoch_running_acc_list,
            "epoch_time_list": trainer.epoch_time_list,
            "examples_per_sec_list": trainer.examples_per_sec_list,
            "lr_list": trainer.lr_list,
        },
    }
    if trainer.mixed is not None:
        meta["mixed"], master = trainer.mixed.state()
        arrays.update(master)
    meta["epoch_state"]["skipped"] = trainer._epoch_skipped
    arrays["__meta__"] = np.array(json.dumps(meta, allow_nan=True))
    atomic_write(path, lambda f: np.savez(f, **arrays))
    trainer.last_checkpoint = path
    trainer._checkpoint_iter = trainer.current_iter
    trainer._checkpoint_time = time.monotonic()
    if default:
        prune(trainer, path)
    return path


def prune(trainer, newest):
    """Remove mid-epoch checkpoints but ``newest``, and end-of-epoch ones beyond keep_checkpoints."""
    found = _list_checkpoints(trainer.checkpoint_dir)
    ends = [p for (_, step), p in found if step == 0]
    old = [p for (_, step), p in found if step != 0 and p != newest]
    if trainer.keep_checkpoints is not None:
        old += ends[: -trainer.keep_checkpoints]
    for path in old:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def load(trainer, path, raw=None):
    """Restore a checkpoint into ``trainer``: the work of :meth:`fastconv.trainer.Trainer.load_checkpoint`
    (``raw``: the file's bytes, read by rank 0 of a distributed run)."""
    path = os.fspath(path)
    meta, arrays = _read_checkpoint(path, raw)
    restore(trainer, path, meta, arrays)


def restore(trainer, path, meta, arrays):
    for key, mine in (
        ("train_size", trainer.train_size),
        ("mini_batch_size", trainer.batch_size),
        ("iter_per_epoch", trainer.iter_per_epoch),
        ("sampling", trainer.sampling),
    ):
        if meta[key] != mine:
            raise ValueError(f"{path}: checkpoint has {key}={meta[key]!r}, this trainer {mine!r}")
    perm = arrays.get("epoch_perm")
    if perm is not None and (perm.shape != (trainer.train_size,) or perm.dtype.kind not in "iu"):
        raise ValueError(
            f"{path}: checkpoint's epoch order has shape {perm.shape}, not ({trainer.train_size},)"
        )
    if meta["current_iter"] > trainer.max_iter:
        raise ValueError(
            f"{path}: checkpoint is at epoch {meta['current_epoch']}, beyond epochs={trainer.epochs}"
        )
    mixed = meta.get("mixed")
    if (mixed is None) != (trainer.mixed is None):
        raise ValueError(
            f"{path}: checkpoint was written {'without' if mixed is None else 'with'} mixed precision, "
            f"this trainer runs {'with' if trainer.mixed is not None else 'without'} it"
        )
    params = trainer.network.params
    if sorted(meta["params"]) != sorted(params):
        raise ValueError(
            f"{path}: checkpoint has parameters {sorted(meta['params'])}, the network {sorted(params)}"
        )
    for key, value in params.items():
        saved = arrays[f"param/{key}"]
        if saved.shape != value.shape or saved.dtype != _io.storable_dtype(value.dtype):
            raise ValueError(
                f"{path}: parameter {key!r} is {saved.dtype}{saved.shape}, "
                f"the network's {value.dtype}{value.shape}"
            )
    layers = _layer_list(trainer.network)
    for i, attrs in meta["buffers"].items():
        for attr in attrs:
            i_ = int(i)
            current = getattr(layers[i_], attr, None) if i_ < len(layers) else None
            saved = arrays[f"buffer/{i}/{attr}"]
            if current is not None and getattr(current, "shape", None) != saved.shape:
                raise ValueError(f"{path}: layer {i} {attr} is {saved.shape}, the network's {current.shape}")
            if i_ >= len(layers) or not hasattr(layers[i_], attr):
                raise ValueError(
                    f"{path}: checkpoint has {attr} for layer {i}, the network has no such layer"
                )
    opt = meta["optimizer"]
    if opt["class"] != type(trainer.optimizer).__name__:
        raise ValueError(
            f"{path}: checkpoint was written with optimizer {opt['class']}, "
            f"this trainer uses {type(trainer.optimizer).__name__}"
        )

    if mixed is not None:
        trainer.mixed.load_state(mixed, arrays, path)  # checks everything before it writes
    # Everything is checked: now change state. Parameters in place, so layers keep sharing them.
    for key, value in params.items():
        value[...] = arrays[f"param/{key}"]
    for i, attrs in meta["buffers"].items():
        for attr in attrs:
            current = getattr(layers[int(i)], attr, None)
            saved = arrays[f"buffer/{i}/{attr}"]
            setattr(layers[int(i)], attr,
                    saved.astype(current.dtype) if isinstance(current, np.ndarray) else saved.copy())
    for i, state in meta["layer_rngs"].items():
        rng = getattr(layers[int(i)], "_rng", None) if int(i) < len(layers) else None
        if isinstance(rng, np.random.Generator):
            rng.bit_generator.state = state
    for attr, value in opt["scalars"].items():
        setattr(trainer.optimizer, attr, value)
    for attr in opt["dicts"]:
        prefix = f"opt/{attr}/"
        setattr(
            trainer.optimizer,
            attr,
            {k[len(prefix) :]: v.copy() for k, v in arrays.items() if k.startswith(prefix)},
        )
    for attr in opt["arrays"]:
        setattr(trainer.optimizer, attr, arrays[f"opt/{attr}"].copy())
    trainer.base_lr = meta["base_lr"]
    trainer.current_iter = meta["current_iter"]
    trainer.current_epoch = meta["current_epoch"]
    for name, values in meta["lists"].items():
        setattr(trainer, name, list(values))
    for name in ("train_eval_loss_list", "test_loss_list"):  # not in version-1 checkpoints
        if name not in meta["lists"]:
            setattr(trainer, name, [None] * len(trainer.test_acc_list))
    state = meta.get("epoch_state") or {}
    trainer._epoch_steps = int(state.get("steps", 0))
    trainer._epoch_loss_sum = float(state.get("loss_sum", 0.0))
    trainer._epoch_correct = state.get("correct", 0)
    trainer._epoch_seen = int(state.get("seen", 0))
    trainer._epoch_train_time = float(state.get("train_time", 0.0))
    trainer._epoch_skipped = int(state.get("skipped", 0))
    trainer.rng.bit_generator.state = meta["rng"]
    npr = meta["np_random"]
    np.random.set_state(
        ("MT19937", arrays["np_random/keys"], npr["pos"], npr["has_gauss"], npr["cached_gaussian"])
    )
    aug_rng = _augment_rng(trainer.augment)
    if aug_rng is not None and meta["augment_rng"] is not None:
        aug_rng.bit_generator.state = meta["augment_rng"]
    trainer._perm = None if perm is None else perm.copy()
    trainer.last_checkpoint = path
    trainer._checkpoint_iter = trainer.current_iter
    step = trainer.current_iter % trainer.iter_per_epoch
    where = f"epoch {trainer.current_epoch}" + (f" + {step} steps" if step else "")
    trainer._say(f"resumed from {path} ({where}, iteration {trainer.current_iter})")
