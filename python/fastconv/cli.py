"""``fastconv train`` and ``fastconv evaluate``: train a model of :mod:`fastconv.models` on (Fashion-)MNIST
with :class:`fastconv.trainer.Trainer`, or measure the test accuracy of saved parameters.

``fastconv train --out DIR`` writes ``DIR/params.npz``, ``DIR/history.json``, ``DIR/curves.png`` (when
matplotlib is installed) and ``DIR/checkpoints/epoch-NNNN.npz``. User errors end with exit code 2 and one
line on stderr, ``fastconv <command>: error: <argument or file>: <reason>``, no traceback: bad options,
missing or corrupt data, images the model cannot take (zero-sized, another size, none), parameter files
that cannot be read (refused pickle globals, truncated files, values that are not arrays) or do not fit
the model, and files that cannot be written (a full disk; the file it would have replaced is untouched).
A diverged run ends with exit code 1, an interrupted one with 130.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings

__all__ = ["DATASETS", "DEFAULT_EPOCHS", "MODELS", "add_commands", "run"]

MODELS = ("deepconvnet", "simpleconvnet", "lenet", "kerascnn")
DATASETS = ("fashion-mnist", "mnist")
# One DeepConvNet epoch over 60,000 images takes ~30 s on 2 Zen 3 cores: 5 epochs finish in ~3 minutes.
DEFAULT_EPOCHS = 5
# --augment without finer options: shifts of 10% of the image, rotations up to 10 degrees.
DEFAULT_SHIFT = 0.1
DEFAULT_ROTATION = 10.0


# Every model of MODELS, as models.build(name) makes it, takes (N, 1, 28, 28) images.
IMAGE_SHAPE = (1, 28, 28)

# What fastconv.io.load_params raises for a file that cannot be read as parameters (OSError: not readable;
# ParamFileError, a ValueError: content refused, truncated or over a limit; TypeError: not a dict of arrays).
_PARAMS_FILE_ERRORS = (OSError, ValueError, TypeError)


class CommandError(Exception):
    """A user error: printed as ``fastconv <command>: error: <message>`` on one line, exit code 2."""


def _one_line(text):
    """``text`` with its lines joined, so that an error is one line whatever the message it quotes."""
    out = ""
    for line in (part.strip() for part in str(text).splitlines()):
        if line:
            out += ("" if not out else " " if out.endswith((":", ".")) else "; ") + line
    return out


def _reason(exc, path):
    """What went wrong with ``path``, without repeating the path that messages of fastconv start with."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename in (None, path):
        return exc.strerror
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        text = f"file ends too early ({text})"
    prefix = f"{path}: "
    return text.removeprefix(prefix)


def _write(path, write):
    """Call ``write(path)``; a failure to write (a full disk, no permission) is a one-line user error."""
    try:
        write(path)
    except OSError as exc:
        raise CommandError(f"{path}: cannot write ({_reason(exc, path)})") from exc


# ======================================================================================================
# argument types (argparse turns their ArgumentTypeError into "argument --x: ..." and exit code 2)


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def _float_in(low, high=math.inf, low_open=False, high_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (
            math.isfinite(value)
            and (value > low if low_open else value >= low)
            and (value < high if high_open else value <= high)
        )
        if not ok:
            lo = f"{'>' if low_open else '>='} {low}"
            hi = "" if high == math.inf else f" and {'<' if high_open else '<='} {high}"
            raise argparse.ArgumentTypeError(f"expected a finite number {lo}{hi}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


# ======================================================================================================
# parsers


def add_commands(subparsers):
    """Add the ``train`` and ``evaluate`` sub-commands to an ``argparse`` sub-parser collection."""
    from .trainer import OPTIMIZER_KEYS

    t = subparsers.add_parser(
        "train",
        help="train a model on Fashion-MNIST or MNIST",
        description="Train a model with a progress bar; print test accuracy and examples/s per epoch; write "
        "params.npz, history.json, curves.png and checkpoints/ under --out.",
    )
    t.add_argument("--model", choices=MODELS, default="deepconvnet")
    t.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    t.add_argument("--data-dir", metavar="PATH", help="directory holding the four IDX files")
    t.add_argument("--no-download", action="store_true", help="never download the data set")
    t.add_argument("--epochs", type=_int_at_least(1), default=DEFAULT_EPOCHS)
    t.add_argument("--batch-size", type=_int_at_least(1), default=100)
    t.add_argument("--optimizer", type=str.lower, choices=sorted(OPTIMIZER_KEYS), default="adam")
    t.add_argument("--lr", type=_float_in(0, low_open=True), default=0.001, help="base learning rate")
    t.add_argument(
        "--weight-decay",
        type=_float_in(0),
        default=None,
        help="weight decay passed to the optimizer (needs an optimizer that takes weight_decay)",
    )
    t.add_argument(
        "--schedule",
        choices=("none", "step", "cosine"),
        default="none",
        help="learning-rate schedule over the epochs",
    )
    t.add_argument(
        "--step-size",
        type=_float_in(0, low_open=True),
        default=None,
        help="epochs between decays of --schedule step (default max(1, epochs // 4))",
    )
    t.add_argument("--gamma", type=_float_in(0), default=None, help="decay factor of --schedule step (0.5)")
    t.add_argument(
        "--warmup",
        type=_float_in(0),
        default=0.0,
        metavar="EPOCHS",
        help="linear learning-rate warm-up, in epochs",
    )
    t.add_argument(
        "--augment",
        action="store_true",
        help=f"random shifts ({DEFAULT_SHIFT:g} of the size) and rotations ({DEFAULT_ROTATION:g} "
        "degrees) of the training images, unless --shift/--rotation/--flip say otherwise",
    )
    t.add_argument(
        "--shift",
        type=_float_in(0),
        default=None,
        help="augmentation: largest shift, a fraction of the size (< 1) or pixels (implies --augment)",
    )
    t.add_argument(
        "--rotation",
        type=_float_in(0, 180),
        default=None,
        metavar="DEGREES",
        help="augmentation: largest rotation (implies --augment)",
    )
    t.add_argument(
        "--flip", action="store_true", help="augmentation: random horizontal flips (implies --augment)"
    )
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument(
        "--threads", type=_int_at_least(1), default=None, help="kernel threads (default: all cores)"
    )
    t.add_argument("--seed", type=_int_at_least(0), default=None)
    t.add_argument(
        "--out", metavar="DIR", default="fastconv-run", help="output directory (default %(default)s)"
    )
    t.add_argument(
        "--train-size", type=_int_at_least(1), default=None, help="use the first N training images"
    )
    t.add_argument("--test-size", type=_int_at_least(1), default=None, help="use the first N test images")
    t.add_argument(
        "--eval-samples",
        type=_int_at_least(1),
        default=10000,
        help="per-epoch accuracies on the first N train / test images (default %(default)s)",
    )
    t.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in DIR/checkpoints"
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = subparsers.add_parser(
        "evaluate",
        help="test accuracy of saved parameters",
        description="Load parameters saved by `fastconv train` and print the test accuracy.",
    )
    e.add_argument("--model", choices=MODELS, required=True)
    e.add_argument("--params", metavar="FILE", required=True, help="a params.npz written by fastconv train")
    e.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    e.add_argument("--data-dir", metavar="PATH", help="directory holding the four IDX files")
    e.add_argument("--no-download", action="store_true", help="never download the data set")
    e.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    e.add_argument("--test-size", type=_int_at_least(1), default=None, help="use the first N test images")
    e.add_argument("--batch-size", type=_int_at_least(1), default=100)
    e.add_argument("--threads", type=_int_at_least(1), default=None)


# ======================================================================================================
# shared steps


def _load_data(args, dtype):
    from . import datasets

    load = datasets.load_fashion_mnist if args.dataset == "fashion-mnist" else datasets.load_mnist
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise CommandError(f"--data-dir {args.data_dir}: no such directory")
    try:
        (x_train, t_train), (x_test, t_test) = load(
            normalize=True,
            flatten=False,
            one_hot_label=False,
            path=args.data_dir,
            download=not args.no_download,
        )
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    source = f"--data-dir {args.data_dir}" if args.data_dir is not None else f"--dataset {args.dataset}"
    for split, x in (("training", x_train), ("test", x_test)):
        if split == "training" and args.command != "train":
            continue
        _check_images(x, source, split, args.model)
    for name, size, x in (
        ("--train-size", getattr(args, "train_size", None), x_train),
        ("--test-size", args.test_size, x_test),
    ):
        if size is not None and size > len(x):
            raise CommandError(f"{name} {size}: {args.dataset} has only {len(x)} images there")
    if getattr(args, "train_size", None) is not None:
        x_train, t_train = x_train[: args.train_size], t_train[: args.train_size]
    if args.test_size is not None:
        x_test, t_test = x_test[: args.test_size], t_test[: args.test_size]
    return (x_train.astype(dtype, copy=False), t_train), (x_test.astype(dtype, copy=False), t_test)


def _check_images(x, source, split, model):
    """Refuse, before training or evaluating, images the model cannot take (none, zero-sized, other sizes)."""
    if len(x) == 0:
        raise CommandError(f"{source}: there are no {split} images")
    shape = tuple(x.shape[1:])
    if shape != IMAGE_SHAPE:
        size = "x".join(str(d) for d in shape)
        empty = " (zero-sized)" if 0 in shape else ""
        expected = "x".join(str(d) for d in IMAGE_SHAPE)
        raise CommandError(
            f"{source}: the {split} images are {size}{empty}; --model {model} takes {expected}"
        )


def _build_model(name, dtype, seed):
    from . import models

    try:
        return models.build(name, dtype=dtype, seed=seed)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--model {name}: {exc}") from exc


def _set_threads(threads):
    if threads is not None:
        import fastconv

        try:
            fastconv.set_num_threads(threads)
        except ValueError as exc:  # over fastconv's thread limit: say so as the option's error
            raise CommandError(f"--threads {threads}: {exc}") from exc


# ======================================================================================================
# commands


def _train(args):
    import numpy as np

    from .trainer import Trainer, TrainingDiverged

    dtype = np.dtype(args.dtype).type
    _set_threads(args.threads)
    if args.seed is not None:
        # Dropout layers without their own seed draw from NumPy's global generator (as in the book).
        np.random.seed(args.seed)
    (x_train, t_train), (x_test, t_test) = _load_data(args, dtype)
    network = _build_model(args.model, dtype, args.seed)

    augment = None
    if args.augment or args.shift is not None or args.rotation is not None or args.flip:
        from .augment import ImageAugmenter

        finer = args.shift is not None or args.rotation is not None or args.flip
        shift = args.shift if args.shift is not None else (0.0 if finer else DEFAULT_SHIFT)
        rotation = args.rotation if args.rotation is not None else (0.0 if finer else DEFAULT_ROTATION)
        augment = ImageAugmenter(
            width_shift_range=shift,
            height_shift_range=shift,
            rotation_range=rotation,
            horizontal_flip=args.flip,
            seed=args.seed,
        )

    schedule_param = {}
    if args.step_size is not None:
        schedule_param["step_size"] = args.step_size
    if args.gamma is not None:
        schedule_param["gamma"] = args.gamma
    if schedule_param and args.schedule != "step":
        raise CommandError("--step-size/--gamma: only with --schedule step")
    if args.warmup:
        schedule_param["warmup_epochs"] = args.warmup
    optimizer_param = {"lr": args.lr}
    if args.weight_decay is not None:
        optimizer_param["weight_decay"] = args.weight_decay

    out = args.out
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--out {out}: {exc}") from exc
    checkpoint_dir = os.path.join(out, "checkpoints")
    # --resume skipping an unreadable checkpoint warns (RuntimeWarning "resume: ..."): one line here too
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message="resume: ", category=RuntimeWarning)
        try:
            trainer = Trainer(
                network,
                x_train,
                t_train,
                x_test,
                t_test,
                epochs=args.epochs,
                mini_batch_size=args.batch_size,
                optimizer=args.optimizer,
                optimizer_param=optimizer_param,
                evaluate_sample_num_per_epoch=args.eval_samples,
                verbose=True,
                lr_schedule=None if args.schedule == "none" else args.schedule,
                lr_schedule_param=schedule_param,
                augment=augment,
                checkpoint_dir=checkpoint_dir,
                resume=args.resume,
                seed=args.seed,
                progress=not args.no_progress,
            )
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:  # the checkpoint directory cannot be made, listed or cleaned
            path = os.fspath(exc.filename) if exc.filename is not None else checkpoint_dir
            raise CommandError(f"{path}: {_reason(exc, path)}") from exc
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and str(w.message).startswith("resume: "):
            print(f"fastconv train: warning: {_one_line(w.message)}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    import fastconv

    print(
        f"fastconv train: {args.model} on {args.dataset} ({len(x_train)} train / {len(x_test)} test images), "
        f"{args.epochs} epochs of {trainer.iter_per_epoch} steps, batch {args.batch_size}, {args.optimizer} "
        f"lr {args.lr:g}{'' if args.schedule == 'none' else ' ' + args.schedule}"
        f"{', augmented' if augment is not None else ''}, {args.dtype}, {fastconv.get_num_threads()} threads",
        flush=True,
    )
    config = {key: value for key, value in vars(args).items() if key != "command"}
    history_path = os.path.join(out, "history.json")
    try:
        trainer.train()
    except TrainingDiverged as exc:
        extra = {"config": config, "diverged": str(exc)}
        _write(history_path, lambda p: trainer.save_history(p, extra=extra))
        print(f"fastconv: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.filename is None:  # not a file the trainer writes (its writer names the file): not ours
            raise
        path = os.fspath(exc.filename)
        last = trainer.last_checkpoint or "none"
        raise CommandError(f"{path}: cannot write ({_reason(exc, path)}); last checkpoint: {last}") from exc
    except KeyboardInterrupt:
        where = trainer.last_checkpoint or "none"
        print(
            f"\nfastconv: interrupted at iteration {trainer.current_iter}; last checkpoint: {where} "
            f"(rerun with --resume to continue)",
            file=sys.stderr,
        )
        return 130

    params_path = os.path.join(out, "params.npz")
    _write(params_path, network.save_params)
    _write(history_path, lambda p: trainer.save_history(p, extra={"config": config}))
    written = [params_path, history_path]
    try:
        _write(os.path.join(out, "curves.png"), trainer.plot)
        written.append(os.path.join(out, "curves.png"))
    except ImportError:
        print('note: curves.png not written (matplotlib is not installed: pip install "fastconv[plot]")')
    rate = trainer.examples_per_sec_list[-1] if trainer.examples_per_sec_list else 0.0
    print(
        f"test accuracy {trainer.final_test_acc:.4f}, {rate:,.0f} examples/s in the last epoch; "
        f"wrote {', '.join(written)}"
    )
    return 0


def _evaluate(args):
    import numpy as np

    dtype = np.dtype(args.dtype).type
    _set_threads(args.threads)
    if not os.path.isfile(args.params):
        raise CommandError(f"--params {args.params}: no such file")
    network = _build_model(args.model, dtype, 0)
    from . import io as _io

    # a readable file that does not fit the model, or a file that cannot be read as parameters at all
    try:
        network.load_params(args.params)
    except _io.ParamMismatchError as exc:
        raise CommandError(f"--params {args.params} does not fit --model {args.model}: {exc}") from exc
    except _PARAMS_FILE_ERRORS as exc:
        raise CommandError(f"--params {args.params}: {_reason(exc, args.params)}") from exc
    _, (x_test, t_test) = _load_data(args, dtype)
    acc = float(network.accuracy(x_test, t_test, batch_size=args.batch_size))
    print(f"test accuracy {acc:.4f} ({args.model} on {len(x_test)} {args.dataset} test images)")
    return 0


def run(args) -> int:
    """Run a parsed ``train`` or ``evaluate`` command; user errors print one line and return 2."""
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        raise CommandError(f"unknown command {args.command!r}")
    except CommandError as exc:
        print(f"fastconv {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
