"""Keras 3 callbacks: the hooks ``fit`` / ``evaluate`` / ``predict`` call, with Keras' arguments.

``History`` (returned by ``fit``), ``ProgbarLogger`` (Keras' progress bar), ``EarlyStopping``,
``ModelCheckpoint``, ``LearningRateScheduler``, ``ReduceLROnPlateau``, ``CSVLogger``, ``LambdaCallback``,
``TerminateOnNaN``.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings

import numpy as np

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]


class Callback:
    """Base class: override any of the ``on_*`` hooks; ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


class CallbackList(Callback):
    """Calls every callback's hook in order."""

    def __init__(self, callbacks=None, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks: expected fastconv.keras.callbacks.Callback instances, got {c!r}")
        if model is not None:
            self.set_model(model)
        self.set_params(params)

    def append(self, c):
        self.callbacks.append(c)
        c.set_model(self.model)
        c.set_params(self.params)

    def set_model(self, model):
        self.model = model
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        self.params = params
        for c in self.callbacks:
            c.set_params(params)

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)


class History(Callback):
    """Records every epoch's logs: ``history.history['loss']``, ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


# ======================================================================================================
# progress bar


def _fmt_value(v) -> str:
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def _fmt_per_step(sec: float, unit: str) -> str:
    if sec >= 1 or sec == 0:
        return f"{sec:.0f}s/{unit}"
    if sec >= 1e-3:
        return f"{sec * 1e3:.0f}ms/{unit}"
    return f"{sec * 1e6:.0f}us/{unit}"


def _fmt_eta(sec: float) -> str:
    sec = int(sec)
    if sec > 3600:
        return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}"
    if sec > 60:
        return f"{sec // 60}:{sec % 60:02d}"
    return f"{sec}s"


class Progbar:
    """Keras' progress line: ``938/938 ━━━━━━━━━━━━━━━━━━━━ 42s 45ms/step - accuracy: 0.9012 - loss: 0.2710``.

    ``verbose=1``: the bar, redrawn in place on a terminal (only the last line of an epoch elsewhere, so logs
    stay readable); ``verbose=2``: the final line only, without the bar.
    """

    def __init__(self, target, verbose=1, width=20, interval=0.05, unit_name="step", file=None):
        self.target, self.verbose, self.width, self.interval = target, verbose, width, interval
        self.unit_name = unit_name
        self.file = file if file is not None else sys.stdout
        self._dynamic = hasattr(self.file, "isatty") and self.file.isatty()
        self._start = time.time()
        self._last = 0.0
        self._prev_width = 0
        self._first_step_time = None

    def update(self, current, values=None, finalize=None):
        finalize = current >= self.target if finalize is None else finalize
        now = time.time()
        if self.verbose == 0 or (
            not finalize and (not self._dynamic or self.verbose == 2 or now - self._last < self.interval)
        ):
            return
        self._last = now
        elapsed = now - self._start
        per = elapsed / current if current else 0.0
        digits = int(math.log10(self.target)) + 1 if self.target else 1
        count = f"%{digits}d/%d" % (current, self.target)
        metrics = "".join(f" - {k}: {_fmt_value(v)}" for k, v in (values or []))
        if self.verbose == 2:
            self.file.write(f"{count} - {elapsed:.0f}s - {_fmt_per_step(per, self.unit_name)}{metrics}\n")
            self.file.flush()
            return
        done = int(self.width * current / self.target) if self.target else self.width
        bar = "━" * done + "━" * (self.width - done)
        if self._dynamic:
            bar = f"\x1b[32m{'━' * done}\x1b[0m\x1b[37m{'━' * (self.width - done)}\x1b[0m"
        when = f"{elapsed:.0f}s" if finalize else _fmt_eta(per * (self.target - current))
        line = f"{count} {bar} {when} {_fmt_per_step(per, self.unit_name)}{metrics}"
        width = (
            len(count) + self.width + len(when) + len(metrics) + 3 + len(_fmt_per_step(per, self.unit_name))
        )
        pad = " " * max(0, self._prev_width - width)
        self._prev_width = width
        self.file.write(("\r" if self._dynamic else "") + line + pad + ("\n" if finalize else ""))
        self.file.flush()


class ProgbarLogger(Callback):
    """Prints ``Epoch 1/5`` and the progress bar (``fit``'s ``verbose`` 1 or 2, ``evaluate``, ``predict``)."""

    def __init__(self):
        super().__init__()
        self._bar = None
        self._mode = "train"

    def _make(self, target):
        self._bar = Progbar(target, verbose=self.params.get("verbose", 1))

    def on_epoch_begin(self, epoch, logs=None):
        if self.params.get("verbose", 1) and self.params.get("epochs", 1) > 1:  # as Keras: not for one epoch
            print(f"Epoch {epoch + 1}/{self.params['epochs']}")
            sys.stdout.flush()
        self._make(self.params["steps"])

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 < self.params["steps"]:
            self._bar.update(batch + 1, list((logs or {}).items()))

    def on_epoch_end(self, epoch, logs=None):
        self._bar.update(self.params["steps"], list((logs or {}).items()), finalize=True)

    def on_test_begin(self, logs=None):
        if self.params.get("mode") == "test":
            self._make(self.params["steps"])

    def on_test_batch_end(self, batch, logs=None):
        if self.params.get("mode") == "test":
            self._bar.update(batch + 1, list((logs or {}).items()), finalize=False)

    def on_test_end(self, logs=None):
        if self.params.get("mode") == "test":
            self._bar.update(self.params["steps"], list((logs or {}).items()), finalize=True)

    def on_predict_begin(self, logs=None):
        self._make(self.params["steps"])

    def on_predict_batch_end(self, batch, logs=None):
        self._bar.update(batch + 1, finalize=False)

    def on_predict_end(self, logs=None):
        self._bar.update(self.params["steps"], finalize=True)


# ======================================================================================================
# monitoring callbacks


def _monitor_op(mode, monitor, cls):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{cls} mode {mode} is unknown, fallback to auto mode.", stacklevel=3)
        mode = "auto"
    if mode == "max" or (mode == "auto" and ("acc" in monitor or monitor.endswith("auc"))):
        return np.greater
    return np.less


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving for ``patience`` epochs (Keras' arguments)."""

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.monitor_op = _monitor_op(mode, monitor, "EarlyStopping")
        self.min_delta = abs(min_delta) if self.monitor_op is np.greater else -abs(min_delta)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _improved(self, current, reference):
        return reference is None or self.monitor_op(current - self.min_delta, reference)

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. Available "
                f"metrics are: {','.join(logs or {})}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``.keras``) or its weights (``.weights.npz``) every epoch or when ``monitor`` improves.

    ``filepath`` may hold ``{epoch}`` and log names (``'ckpt-{epoch:02d}-{val_loss:.2f}.keras'``).
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__()
        filepath = os.fspath(filepath)
        if save_weights_only and not filepath.endswith(".weights.npz"):
            raise ValueError(
                "When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided must "
                f"end in `.weights.npz` (fastconv.keras's weights format). Received: filepath={filepath}"
            )
        if not save_weights_only and not filepath.endswith(".keras"):
            raise ValueError(
                "The filepath provided must end in `.keras` (Keras model format). Received: "
                f"filepath={filepath}"
            )
        if save_freq != "epoch":
            raise NotImplementedError(f"ModelCheckpoint(save_freq={save_freq!r}): only 'epoch' is supported")
        self.filepath, self.monitor, self.verbose = filepath, monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.monitor_op = _monitor_op(mode, monitor, "ModelCheckpoint")
        self.best = initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"Can save best model only with {self.monitor} available, skipping.", stacklevel=2
                )
                return
            if self.best is not None and not self.monitor_op(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                prev = "inf" if self.best is None else f"{self.best:.5f}"
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {prev} to {current:.5f}, "
                    "saving model to "
                    f"{path}"
                )
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        lr = self.schedule(epoch, lr)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
            raise ValueError(f'The output of the "schedule" function should be a float. Got: {lr}')
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
        **kwargs,
    ):
        super().__init__()
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.monitor, self.factor, self.patience, self.verbose = (
            monitor,
            float(factor),
            int(patience),
            verbose,
        )
        self.min_delta, self.cooldown, self.min_lr = float(min_delta), int(cooldown), float(min_lr)
        self.monitor_op = _monitor_op(mode, monitor, "ReduceLROnPlateau")
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def _improved(self, current):
        if self.best is None:
            return True
        if self.monitor_op is np.greater:
            return current > self.best + self.min_delta
        return current < self.best - self.min_delta

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                f"available. Available metrics are: {','.join(logs)}.",
                stacklevel=2,
            )
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(self.model.optimizer.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row (``epoch`` first, then the log keys sorted, as Keras)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._append_header = not exists
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self._keys], delimiter=self.sep)
            if self._append_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
        **kwargs,
    ):
        super().__init__()
        hooks = dict(
            on_epoch_begin=on_epoch_begin,
            on_epoch_end=on_epoch_end,
            on_train_begin=on_train_begin,
            on_train_end=on_train_end,
            on_train_batch_begin=on_train_batch_begin,
            on_train_batch_end=on_train_batch_end,
            **kwargs,
        )
        for name, f in hooks.items():
            if f is not None:
                if not hasattr(Callback, name):
                    raise ValueError(f"LambdaCallback: unknown hook {name!r}")
                setattr(self, name, f)


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
