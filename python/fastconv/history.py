"""History and curves of :class:`fastconv.trainer.Trainer`: the history dict, its JSON file, the result in
words and the loss/accuracy figure (matplotlib, imported only when a figure is made).

Files go through :func:`fastconv._atomic.atomic_write` (temporary file, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ._atomic import atomic_write


def _finite_or_none(values):
    return [float(v) if v is not None and math.isfinite(v) else None for v in values]


def history(trainer):
    """The run so far as a JSON-able dict (NaN/Inf values become None)."""
    return {
        "train_loss": _finite_or_none(trainer.train_loss_list),
        "train_acc": _finite_or_none(trainer.train_acc_list),
        "test_acc": _finite_or_none(trainer.test_acc_list),
        "train_eval_loss": _finite_or_none(trainer.train_eval_loss_list),
        "test_loss": _finite_or_none(trainer.test_loss_list),
        "epoch_train_loss": _finite_or_none(trainer.epoch_loss_list),
        "epoch_running_train_acc": _finite_or_none(trainer.epoch_running_acc_list),
        "epoch_time_s": _finite_or_none(trainer.epoch_time_list),
        "examples_per_sec": _finite_or_none(trainer.examples_per_sec_list),
        "lr": _finite_or_none(trainer.lr_list),
        "final_test_acc": None if trainer.final_test_acc is None else float(trainer.final_test_acc),
        "final_test_loss": None if trainer.final_test_loss is None else float(trainer.final_test_loss),
        "current_iter": trainer.current_iter,
        "current_epoch": trainer.current_epoch,
        "iter_per_epoch": trainer.iter_per_epoch,
        "max_iter": trainer.max_iter,
        "epochs": trainer.epochs,
        "mini_batch_size": trainer.batch_size,
        "train_size": trainer.train_size,
        "test_size": len(trainer.x_test),
        "eval_samples": trainer.evaluate_sample_num_per_epoch,
        "sampling": trainer.sampling,
        "optimizer": type(trainer.optimizer).__name__,
        "base_lr": None if trainer.base_lr is None else float(trainer.base_lr),
        "ranks": getattr(trainer, "ranks", 1),
        "precision": getattr(trainer, "precision", None),
        "loss_scale": _finite_or_none(getattr(trainer, "loss_scale_list", [])),
        "skipped_steps": list(getattr(trainer, "skipped_steps_list", [])),
    }


def save_history(trainer, path, extra=None):
    """Write the history to ``path``: the work of :meth:`fastconv.trainer.Trainer.save_history`."""
    record = trainer.history
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra: expected a dict, got {type(extra).__name__}")
        record.update(extra)
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def plot(trainer, path, *, title=None):
    """Save the curves as a PNG: the work of :meth:`fastconv.trainer.Trainer.plot`."""
    fig = trainer.figure(title=title)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))


def figure(trainer, *, title=None):
    """The :meth:`plot` figure, a ``matplotlib.figure.Figure`` (with an Agg canvas; pyplot untouched)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator, PercentFormatter
    except ImportError as exc:
        raise ImportError('Trainer.plot needs matplotlib: pip install "fastconv[plot]"') from exc

    def floats(values):
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    if title is None:
        title = f"{type(trainer.network).__name__}: {trainer.result_text()}"
    # A Figure with its own Agg canvas: no pyplot, no change to the user's global backend.
    fig = Figure(figsize=(10, 4.4))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    fig.suptitle(title, fontsize=12)

    loss = floats(trainer.train_loss_list)
    at = np.arange(1, len(loss) + 1) / trainer.iter_per_epoch  # a step's position in epochs
    ax_loss.plot(at, loss, color="0.82", linewidth=0.6, label="train, per step (training mode)")
    window = max(1, trainer.iter_per_epoch // 10)
    if len(loss) > window > 1 and np.isfinite(loss).all():
        mean = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax_loss.plot(
            at[window - 1 :],
            mean,
            color="C0",
            linewidth=1.0,
            alpha=0.6,
            label=f"train, mean of {window} steps (training mode)",
        )
    epochs = np.arange(1, len(trainer.test_acc_list) + 1)
    eval_loss = floats(trainer.train_eval_loss_list), floats(trainer.test_loss_list)
    if np.isfinite(eval_loss[0]).any():
        ax_loss.plot(epochs, eval_loss[0], "o-", color="C0", label="train (inference mode)")
    if np.isfinite(eval_loss[1]).any():
        ax_loss.plot(epochs, eval_loss[1], "s-", color="C1", label="test")
    shown = np.concatenate([loss[np.isfinite(loss)], *(v[np.isfinite(v)] for v in eval_loss)])
    if len(shown):
        # the first steps' loss (~2.3) would squash the curves: the axis stops above most of it
        top = max(
            np.percentile(loss[np.isfinite(loss)], 98) if np.isfinite(loss).any() else 0,
            *(v[np.isfinite(v)].max(initial=0) for v in eval_loss),
        )
        ax_loss.set_ylim(0, 1.08 * top if top > 0 else 1)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.set_xlim(0, max(len(epochs), at[-1] if len(at) else 0, 1) + 0.05)
    ax_loss.grid(alpha=0.3)

    accs = floats(trainer.train_acc_list), floats(trainer.test_acc_list)
    ax_acc.plot(epochs, accs[0], "o-", color="C0", label="train (inference mode)")
    ax_acc.plot(epochs, accs[1], "s-", color="C1", label="test")
    values = np.concatenate([v[np.isfinite(v)] for v in accs])
    if trainer.final_test_acc is not None:
        values = np.append(values, trainer.final_test_acc)
        ax_acc.axhline(
            trainer.final_test_acc,
            color="C1",
            linestyle=":",
            linewidth=1,
            label=f"final test accuracy {trainer.final_test_acc:.2%}",
        )
    if len(values):
        # zoomed to the values (84-91% must not be a thin band at the top of 0-100%)
        lo, hi = float(values.min()), float(values.max())
        pad = max(0.01, 0.15 * (hi - lo))
        ax_acc.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) + 1e-9)
    ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_xlim(0.5, max(len(epochs), 1) + 0.5)
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def result_text(trainer):
    """``"test accuracy 91.23% (10,000 images) after 5 epochs"``: the run's result in words."""
    done = f"after {trainer.current_epoch} epoch{'s' * (trainer.current_epoch != 1)}"
    if trainer.current_epoch < trainer.epochs:
        done += f" of {trainer.epochs}"
    if trainer.final_test_acc is not None:
        return f"test accuracy {trainer.final_test_acc:.2%} ({len(trainer.x_test):,} images) {done}"
    if trainer.test_acc_list and trainer.test_acc_list[-1] is not None:
        return f"test accuracy {trainer.test_acc_list[-1]:.2%} {done}"
    return done
