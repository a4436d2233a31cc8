"""``fastconv train``, ``fastconv evaluate`` and ``fastconv runs``: train a model of :mod:`fastconv.models` on
(Fashion-)MNIST with :class:`fastconv.trainer.Trainer`, measure the test accuracy of saved parameters, and
show what a run directory holds.

``fastconv train --out DIR`` writes ``DIR/history.json`` (the configuration, the status and the per-epoch
metrics: at the start, after every epoch and at the end), ``DIR/checkpoints/`` (after every epoch, every
``--checkpoint-every`` minutes and on Ctrl-C), and at the end ``DIR/params.npz`` and ``DIR/curves.png`` (when
matplotlib is installed). It never replaces another run's files: a ``DIR`` that holds a run needs
``--resume`` (continue it, with the options stored in its history.json; options that contradict them are
refused) or ``--overwrite`` (remove that run's files first). The first Ctrl-C finishes the current step,
writes a checkpoint and exits with code 130; ``--resume`` then continues bit for bit.

User errors end with exit code 2 and one line on stderr, ``fastconv <command>: error: <argument or file>:
<reason>``, no traceback: bad options, missing or corrupt data, images the model cannot take (zero-sized,
another size, none), parameter files that cannot be read (refused pickle globals, truncated files, values
that are not arrays) or do not fit the model, a run directory in use, and files that cannot be written (a
full disk; the file it would have replaced is untouched). A diverged run ends with exit code 1, an
interrupted one with 130.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import socket
import sys
import warnings

__all__ = ["DATASETS", "DEFAULT_EPOCHS", "MODELS", "TRAIN_DEFAULTS", "add_commands", "run"]

MODELS = ("deepconvnet", "simpleconvnet", "lenet", "kerascnn", "vgg", "resnet", "mobilenet", "inception")
# Generative models: `fastconv train` runs their own loop (no classifier, no `evaluate`).
GAN_MODELS = ("dcgan",)
DATASETS = ("fashion-mnist", "mnist")
MODEL_TITLES = {
    "deepconvnet": "DeepConvNet",
    "simpleconvnet": "SimpleConvNet",
    "lenet": "LeNet",
    "kerascnn": "KerasCNN",
    "vgg": "VGG",
    "resnet": "ResNet-20",
    "mobilenet": "MobileNet",
    "inception": "InceptionNet",
}
DATASET_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
# One DeepConvNet epoch over 60,000 images takes ~30 s on 2 Zen 3 cores: 5 epochs finish in ~3 minutes.
DEFAULT_EPOCHS = 5
# --augment without finer options: shifts of 10% of the image, rotations up to 10 degrees.
DEFAULT_SHIFT = 0.1
DEFAULT_ROTATION = 10.0

# The options of `fastconv train` and their defaults. argparse's own default of each is None, so that the
# options a user typed can be told from the defaults: --resume takes the stored value of every option the
# user left out, and refuses a typed one that differs from it (RUN_OPTIONS).
TRAIN_DEFAULTS = {
    "model": "deepconvnet",
    "dataset": "fashion-mnist",
    "epochs": DEFAULT_EPOCHS,
    "batch_size": 100,
    "optimizer": "adam",
    "lr": 0.001,
    "weight_decay": None,
    "schedule": "none",
    "step_size": None,
    "gamma": None,
    "warmup": 0.0,
    "augment": False,
    "shift": None,
    "rotation": None,
    "flip": False,
    "dtype": "float32",
    "precision": None,
    "seed": None,
    "train_size": None,
    "test_size": None,
    "eval_samples": 10000,
    "batch_per_rank": False,
    "out": "fastconv-run",
    "checkpoint_every": 5.0,
}
# What defines a run: what it trains, on what, how (every value changes the parameters or the metrics).
# --epochs is not among them: a resumed run may be given more (or fewer) epochs. Nor are where the data
# is (--data-dir), the threads, the progress bar and the checkpoint interval.
RUN_OPTIONS = (
    "model",
    "dataset",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "step_size",
    "gamma",
    "warmup",
    "augment",
    "shift",
    "rotation",
    "flip",
    "dtype",
    "precision",
    "seed",
    "train_size",
    "test_size",
    "eval_samples",
    "batch_per_rank",
)
# The files of a run in its --out directory (checkpoints/ besides), and those only a --model dcgan run writes
# (with samples_epoch_NNN.png, one per epoch).
RUN_FILES = ("history.json", "params.npz", "curves.png")
GAN_FILES = ("generator.npz", "discriminator.npz", "losses.png")
GAN_SAMPLES = "samples_epoch_*.png"
# What --model dcgan takes besides --epochs, --batch-size, --lr, --dtype, --seed, --dataset, --train-size and
# where things are: the tutorial's loop has no optimizer choice, schedule, augmentation, mixed precision, test
# set or mid-epoch checkpoint.
GAN_REFUSED = ("optimizer", "weight_decay", "schedule", "step_size", "gamma", "warmup", "augment", "shift",
               "rotation", "flip", "precision", "test_size", "eval_samples", "checkpoint_every", "batch_per_rank")
# The tutorial's learning rate (Adam) and batch size, when --lr / --batch-size are not given
GAN_LR = 1e-4
GAN_BATCH = 256


# Every model of MODELS, as models.build(name) makes it, takes (N, 1, 28, 28) images.
IMAGE_SHAPE = (1, 28, 28)

# What fastconv.io.load_params raises for a file that cannot be read as parameters (OSError: not readable;
# ParamFileError, a ValueError: content refused, truncated or over a limit; TypeError: not a dict of arrays).
_PARAMS_FILE_ERRORS = (OSError, ValueError, TypeError)


class CommandError(Exception):
    """A user error: printed as ``fastconv <command>: error: <message>`` on one line, exit code 2.

    ``agreed``: under ``mpiexec``, every rank raised it (rank 0 prints it and every rank exits with code 2);
    any other error of one rank ends the whole job (MPI_Abort).
    """

    def __init__(self, message, agreed=False):
        super().__init__(message)
        self.agreed = agreed


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


def _dataset_name(text):
    """--dataset takes a name; a path gets told about --data-dir instead of only "invalid choice"."""
    name = text.lower()
    if name in DATASETS:
        return name
    if os.sep in text or (os.altsep and os.altsep in text) or os.path.exists(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a path; --dataset takes a name ({', '.join(DATASETS)}), and --data-dir {text} "
            "the directory holding its four IDX files"
        )
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DATASETS)})")


def _plural(n, word):
    return f"{n:,} {word}{'s' * (n != 1)}"


def _option(key):
    return "--" + key.replace("_", "-")


def _default_text(key):
    value = TRAIN_DEFAULTS[key]
    return "" if value is None or value is False else f" (default: {value})"


# ======================================================================================================
# parsers


def add_commands(subparsers):
    """Add the ``train``, ``evaluate`` and ``runs`` sub-commands to an ``argparse`` sub-parser collection."""
    from .trainer import OPTIMIZER_KEYS

    t = subparsers.add_parser(
        "train",
        help="train a model on Fashion-MNIST or MNIST",
        description="Train a model with a progress bar; print the test and train accuracy and loss and "
        "examples/s per epoch; write history.json, checkpoints/, params.npz and curves.png under --out. "
        "A --out that holds a run is never replaced without --overwrite; --resume continues it.",
        epilog="The progress bar and the 'running' numbers of the epoch line are the means over the epoch's "
        "batches so far in training mode (dropout on: what the optimizer sees); the epoch line's test and "
        "train numbers come from the network in inference mode, as in history.json and curves.png. "
        "With --resume, every option left out takes its value from the run's history.json; "
        f"{', '.join(_option(k) for k in RUN_OPTIONS)} must agree with it; --epochs may change.",
    )

    def opt(name, key=None, help="", **kwargs):
        key = key or name[2:].replace("-", "_")
        t.add_argument(name, default=None, help=(help + _default_text(key)).strip(), **kwargs)

    opt("--model", choices=MODELS + GAN_MODELS, help="the network (dcgan: the generative adversarial pair)")
    opt("--dataset", type=_dataset_name, metavar="{" + ",".join(DATASETS) + "}", help="the data set")
    t.add_argument(
        "--data-dir",
        metavar="PATH",
        help="directory holding the four IDX files (default: "
        "$FASTCONV_DATA, ~/.cache/fastconv/NAME, /usr/share/datasets/NAME, then a download)",
    )
    t.add_argument("--no-download", action="store_true", help="never download the data set")
    opt("--epochs", type=_int_at_least(1), metavar="N", help="passes over the training images")
    opt(
        "--batch-size",
        type=_int_at_least(1),
        metavar="N",
        help="images per step (under mpiexec: over all ranks, split between them; --model dcgan: 256, the "
        "tutorial's, unless given)",
    )
    opt(
        "--batch-per-rank",
        action="store_true",
        help="under mpiexec -n N: --batch-size is each rank's batch, the global batch N times it",
    )
    opt("--optimizer", type=str.lower, choices=sorted(OPTIMIZER_KEYS))
    opt("--lr", type=_float_in(0, low_open=True), metavar="X",
        help="base learning rate (--model dcgan: 0.0001, the tutorial's, unless given)")
    opt(
        "--weight-decay",
        type=_float_in(0),
        metavar="X",
        help="weight decay passed to the optimizer (needs an optimizer that takes weight_decay)",
    )
    opt("--schedule", choices=("none", "step", "cosine"), help="learning-rate schedule over the epochs")
    opt(
        "--step-size",
        type=_float_in(0, low_open=True),
        metavar="EPOCHS",
        help="epochs between decays of --schedule step (default: max(1, epochs // 4))",
    )
    opt("--gamma", type=_float_in(0), metavar="X", help="decay factor of --schedule step (default: 0.5)")
    opt("--warmup", type=_float_in(0), metavar="EPOCHS", help="linear learning-rate warm-up, in epochs")
    opt(
        "--augment",
        action="store_true",
        help=f"random shifts ({DEFAULT_SHIFT:g} of the size) and rotations ({DEFAULT_ROTATION:g} degrees) of "
        "the "
        "training images, unless --shift/--rotation/--flip say otherwise",
    )
    opt(
        "--shift",
        type=_float_in(0),
        metavar="X",
        help="augmentation: largest shift, a fraction of the size (< 1) or pixels (implies --augment)",
    )
    opt(
        "--rotation",
        type=_float_in(0, 180),
        metavar="DEGREES",
        help="augmentation: largest rotation (implies --augment)",
    )
    opt("--flip", action="store_true", help="augmentation: random horizontal flips (implies --augment)")
    opt("--dtype", choices=("float32", "float64"))
    opt(
        "--precision",
        choices=("float32", "float16", "bfloat16"),
        help="mixed-precision training: the network in float16 or bfloat16, float32 master weights, "
        "loss scaling for float16 (default: --dtype throughout)",
    )
    t.add_argument(
        "--threads",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="kernel threads (default: all cores)",
    )
    opt(
        "--seed",
        type=_int_at_least(0),
        metavar="N",
        help="seed of the weights, the batch order, dropout and augmentation (default: none, a new run each "
        "time)",
    )
    opt("--out", metavar="DIR", help="the run's directory")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint, with its stored options",
    )
    t.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out (its files are removed first)"
    )
    opt(
        "--train-size",
        type=_int_at_least(1),
        metavar="N",
        help="use the first N training images (default: all)",
    )
    opt("--test-size", type=_int_at_least(1), metavar="N", help="use the first N test images (default: all)")
    opt(
        "--eval-samples",
        type=_int_at_least(1),
        metavar="N",
        help="per-epoch accuracies and losses on the first N train / test images",
    )
    opt(
        "--checkpoint-every",
        type=_float_in(0),
        metavar="MINUTES",
        help="checkpoint in the middle of an epoch every MINUTES of training (0: only at the ends of "
        "epochs and on Ctrl-C)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = subparsers.add_parser(
        "evaluate",
        help="test accuracy of saved parameters",
        description="Load parameters saved by `fastconv train` and print the test accuracy. --model, "
        "--dataset and --dtype default to those in the history.json beside --params, if there is one.",
    )
    e.add_argument("--params", metavar="FILE", required=True, help="a params.npz written by fastconv train")
    e.add_argument(
        "--model",
        choices=MODELS,
        default=None,
        help="the network (default: the one in the history.json beside --params)",
    )
    e.add_argument(
        "--dataset",
        type=_dataset_name,
        metavar="{" + ",".join(DATASETS) + "}",
        default=None,
        help="the data set (default: the run's, else fashion-mnist)",
    )
    e.add_argument("--data-dir", metavar="PATH", help="directory holding the four IDX files")
    e.add_argument("--no-download", action="store_true", help="never download the data set")
    e.add_argument(
        "--dtype", choices=("float32", "float64"), default=None, help="(default: the run's, else float32)"
    )
    e.add_argument(
        "--test-size",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="use the first N test images (default: all)",
    )
    e.add_argument(
        "--batch-size",
        type=_int_at_least(1),
        default=100,
        metavar="N",
        help="images per forward pass (default: 100)",
    )
    e.add_argument(
        "--threads",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="kernel threads (default: all cores)",
    )

    r = subparsers.add_parser(
        "runs",
        help="show a run: status, configuration, per-epoch metrics, files",
        description="Show what `fastconv train --out DIR` left in DIR: the run's status (finished, "
        "interrupted, diverged, running), its configuration, its per-epoch metrics and where its files are. "
        "A directory holding several runs gets one line per run.",
    )
    r.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        default=TRAIN_DEFAULTS["out"],
        help=f"a run directory, or a directory of runs (default: {TRAIN_DEFAULTS['out']})",
    )


# ======================================================================================================
# run directories


def _read_json(path):
    """The JSON object in ``path``; None when there is no such file; CommandError when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: cannot read ({_reason(exc, path)})") from exc
    if not isinstance(data, dict):
        raise CommandError(f"{path}: not a fastconv history (a JSON object expected)")
    return data


def _checkpoints(out):
    from .checkpoint import _list_checkpoints

    return [path for _, path in _list_checkpoints(os.path.join(out, "checkpoints"))]


def _pid_alive(history):
    """Whether the process that wrote ``history`` (status "running") still runs, when that can be known."""
    pid, host = history.get("pid"), history.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def _gan_history(history):
    """Whether ``history`` (a history.json's content) is a --model dcgan run's."""
    return "g_loss" in history or (history.get("config") or {}).get("model") in GAN_MODELS


def _status(history, out):
    """One line: what became of the run whose history.json is ``history``."""
    if _gan_history(history):  # no checkpoints, no resume: how many of its epochs finished
        done = len(history.get("g_loss") or [])
        planned = history.get("epochs", done)
        if history.get("status", "finished") == "finished" or done >= planned:
            return f"a dcgan run, finished after {_plural(done, 'epoch')}"
        alive = _pid_alive(history) if history.get("status") == "running" else None
        state = f"running (pid {history['pid']})" if alive else "stopped"
        return f"a dcgan run, {state} after {done} of {_plural(planned, 'epoch')}"
    status = history.get("status")
    if status is None:  # written by an earlier fastconv: at the end only
        status = "diverged" if "diverged" in history else "finished"
    epochs, done = history.get("epochs"), history.get("current_epoch", 0)
    ipe, it = history.get("iter_per_epoch") or 1, history.get("current_iter", 0)
    resume = f"continue it with: fastconv train --out {out} --resume"
    if status == "finished":
        acc = history.get("final_test_acc")
        result = "" if acc is None else f": test accuracy {acc:.2%} ({history.get('test_size', 0):,} images)"
        return f"finished{result} after {_plural(done, 'epoch')}"
    if status == "diverged":
        return f"diverged: {history.get('diverged', '')}"
    step = it % ipe
    where = (
        f"{_plural(done, 'epoch')}" + (f" and {step} of {ipe} steps" if step else "") + f" of {epochs} done"
    )
    if status == "interrupted":
        return f"interrupted after {where}; {resume}"
    alive = _pid_alive(history)
    if alive:
        return f"running (pid {history['pid']}): {where} when history.json was last written"
    gone = "" if alive is None else f" (its process {history.get('pid')} is gone: killed?)"
    return f"stopped{gone} after at least {where}; {resume}"


def _previous_run(out):
    """None when ``out`` holds no run; else what it holds, in words."""
    if not os.path.isdir(out):
        return None
    files = [name for name in RUN_FILES + GAN_FILES if os.path.exists(os.path.join(out, name))]
    samples = _gan_samples(out)
    if samples:
        files.append(f"{GAN_SAMPLES} ({len(samples)})")
    checkpoints = _checkpoints(out)
    if not files and not checkpoints:
        return None
    history = None
    try:
        history = _read_json(os.path.join(out, "history.json"))
    except CommandError:
        pass
    status = _status(history, out).split(";")[0] if history is not None else "no readable history.json"
    held = files + ([f"checkpoints/ ({len(checkpoints)})"] if checkpoints else [])
    return f"{status}; files {', '.join(held)}"


def _stored_config(out):
    """The configuration stored in ``out``/history.json, or None when there is none."""
    path = os.path.join(out, "history.json")
    history = _read_json(path)
    config = None if history is None else history.get("config")
    return config if isinstance(config, dict) else None


def _describe(value):
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _resolve_options(args):
    """Give every option of ``fastconv train`` its value: typed, stored (--resume) or default."""
    typed = {key for key in TRAIN_DEFAULTS if getattr(args, key, None) is not None}
    out = args.out if args.out is not None else TRAIN_DEFAULTS["out"]
    stored = _stored_config(out) if args.resume else None
    if stored is not None:
        conflicts = []
        for key in RUN_OPTIONS:
            value = stored.get(key, TRAIN_DEFAULTS[key])
            if key not in typed:
                setattr(args, key, value)
            elif getattr(args, key) != value:
                if isinstance(value, bool) or value is None and isinstance(getattr(args, key), bool):
                    conflicts.append(f"{_option(key)} (the run was started without it)")
                else:
                    conflicts.append(
                        f"{_option(key)} {_describe(getattr(args, key))} (the run has {_describe(value)})"
                    )
        if conflicts:
            raise CommandError(
                f"--resume: {', '.join(conflicts)}: --resume continues the run in {out} with its own options "
                f"(fastconv runs {out} lists them); leave these out, or start a new run with another --out"
            )
        if "epochs" not in typed and "epochs" in stored:
            args.epochs = stored["epochs"]
    for key, value in TRAIN_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return stored is not None


def _gan_samples(out):
    return sorted(glob.glob(os.path.join(glob.escape(out), GAN_SAMPLES)))


def _is_gan_run(out):
    """Whether ``out`` holds a --model dcgan run (its history says so, or it holds the two networks)."""
    try:
        history = _read_json(os.path.join(out, "history.json"))
    except CommandError:
        history = None
    if isinstance(history, dict) and _gan_history(history):
        return True
    return all(os.path.exists(os.path.join(out, name)) for name in GAN_FILES[:2])


def _remove_run_files(out, checkpoints=False):
    """--overwrite: remove the previous run's files, a classifier's or a dcgan's (the Trainer removes its
    checkpoints; ``checkpoints`` removes them here, for a dcgan run that replaces a classifier's)."""
    paths = [os.path.join(out, name) for name in RUN_FILES + GAN_FILES] + _gan_samples(out)
    if checkpoints:
        paths += _checkpoints(out)
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CommandError(f"--overwrite: {path}: cannot remove ({_reason(exc, path)})") from exc


# ======================================================================================================
# shared steps


def _load_data(args, dtype):
    """The data set, cut to --train-size / --test-size; sets ``args.data_source`` (where it came from)."""
    from . import datasets

    load = datasets.load_fashion_mnist if args.dataset == "fashion-mnist" else datasets.load_mnist
    if args.data_dir is not None:
        if not os.path.isdir(args.data_dir):
            raise CommandError(f"--data-dir {args.data_dir}: no such directory")
        missing = datasets.missing_files(args.data_dir)
        if missing:
            raise CommandError(
                f"--data-dir {args.data_dir}: missing {', '.join(m + '[.gz]' for m in missing)} (the IDX "
                "files "
                f"of {args.dataset})"
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            directory, source = datasets.locate(
                args.dataset, path=args.data_dir, download=not args.no_download
            )
        except datasets.DataNotFoundError as exc:
            raise CommandError(_not_found_text(exc, args)) from exc
        except OSError as exc:
            raise CommandError(str(exc)) from exc
    _relay(caught, args.command)
    try:
        (x_train, t_train), (x_test, t_test) = load(
            normalize=True, flatten=False, one_hot_label=False, path=directory, download=False
        )
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    args.data_source = f"{directory} ({source})"
    where = f"--data-dir {args.data_dir}" if args.data_dir is not None else f"--dataset {args.dataset}"
    for split, x in (("training", x_train), ("test", x_test)):
        if split == "training" and args.command != "train":
            continue
        _check_images(x, where, split, args.model)
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


def _not_found_text(exc, args):
    """The loader's "not found" in a CLI user's words: --data-dir, --no-download (not path=, download=)."""
    searched = "; ".join(s for s in exc.searched if not s.startswith("(download=False"))
    text = f"{exc.name}: the four IDX files were not found (searched: {searched}). To get them: {exc.how}"
    text += ", or pass --data-dir DIR naming a directory that holds them (or set FASTCONV_DATA=DIR)"
    if args.no_download:
        text += ", or leave out --no-download on a machine with internet access"
    return text


def _relay(caught, command):
    """Print the RuntimeWarnings fastconv gave as one line each (``fastconv <command>: warning: ...``)."""
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and w.filename.startswith(os.path.dirname(__file__)):
            print(f"fastconv {command}: warning: {_one_line(w.message)}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


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


def _numerics(args):
    """``float32``, or ``float16 mixed precision`` for a --precision run."""
    if args.precision in (None, "float32"):
        return args.dtype
    return f"{args.precision} mixed precision"


def _build_model(name, dtype, seed):
    from . import models

    try:
        return models.build(name, dtype=dtype, seed=seed)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--model {name}: {exc}") from exc


def _set_threads(threads):
    if threads is not None:
        import fastconv

        limit = fastconv._cpu.thread_limit()
        if threads > limit:  # fastconv's thread limit, said as the option's error
            raise CommandError(f"--threads {threads}: at most {limit} here (4 per CPU this process may run on, "
                               "at least 16)")
        fastconv.set_num_threads(threads)


# ======================================================================================================
# commands


def _dist():
    from . import distributed

    return distributed


def _start_ranks():
    """The number of ranks: 1, or under ``mpiexec -n N`` (N > 1) N, after starting MPI."""
    dist = _dist()
    if dist.launched_size() == 1:
        return 1
    try:
        dist.init()
    except ImportError as exc:
        raise CommandError(f"mpiexec: started {dist.launched_size()} ranks, but {exc}") from exc
    return dist.size()


def _multi_rank():
    """Whether this process is one of several ranks of a started MPI job."""
    dist = _dist()
    return dist.is_initialized() and dist.size() > 1


def _collectively(ranks, work, broadcast=False):
    """``work()`` on every rank, and its errors agreed: when it raises CommandError on any rank, every rank
    raises it (the first such rank's message). ``broadcast``: return rank 0's result on every rank."""
    if ranks == 1:
        return work()
    dist = _dist()
    result, error = None, None
    try:
        result = work()
    except CommandError as exc:
        error = str(exc) if dist.rank() == 0 else f"rank {dist.rank()}/{ranks}: {exc}"
    errors = [e for e in dist.allgather(error) if e is not None]
    if errors:
        raise CommandError(errors[0], agreed=True)
    return dist.broadcast_object(result) if broadcast else result


def _split(batch, ranks):
    """``"50"`` or ``"34/33"``: the sizes of a batch's shards over the ranks."""
    low, extra = divmod(batch, ranks)
    return f"{low}" if not extra else f"{low + 1}/{low}"


def _train_dcgan(args):
    """``fastconv train --model dcgan``: the DCGAN tutorial's loop on the training images (models.dcgan)."""
    from .models.dcgan import train_dcgan

    if args.resume:
        raise CommandError("--resume: not available with --model dcgan (its runs keep no checkpoints)")
    for key in GAN_REFUSED:
        value = getattr(args, key, None)
        if value is not None and not (key == "optimizer" and value == "adam"
                                      or key == "schedule" and value == "none"):
            raise CommandError(f"{_option(key)}: not available with --model dcgan (the tutorial's Adam loop "
                               "on the training images)")
    if _dist().launched_size() > 1:
        raise CommandError("--model dcgan: runs on one process (not under mpiexec)")
    lr = args.lr if args.lr is not None else GAN_LR
    if args.batch_size is None:
        args.batch_size = GAN_BATCH
    _resolve_options(args)
    previous = _previous_run(args.out)
    if previous is not None and not args.overwrite:
        raise CommandError(
            f"--out {args.out}: holds a run ({previous}); --overwrite replaces it, or choose another --out"
        )
    _set_threads(args.threads)
    (x_train, _), _ = _load_data(args, args.dtype)
    if args.batch_size > len(x_train):
        raise CommandError(f"--batch-size {args.batch_size}: larger than the {len(x_train):,} training images")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--out {args.out}: {exc}") from exc
    if args.overwrite:
        _remove_run_files(args.out, checkpoints=True)
    import fastconv

    seed = 0 if args.seed is None else args.seed
    steps = len(x_train) // args.batch_size
    print(
        f"fastconv train: dcgan on {args.dataset}, {_plural(args.epochs, 'epoch')} of {_plural(steps, 'step')}, "
        f"batch {args.batch_size}, adam lr {lr:g}, {args.dtype}, {_plural(fastconv.get_num_threads(), 'thread')}, "
        f"seed {seed}\n"
        f"data: {len(x_train):,} train images from {args.data_source}\n"
        f"out: {args.out}{' (replacing the run there)' if previous and args.overwrite else ''}",
        flush=True,
    )
    config = {"model": "dcgan", "dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size,
              "lr": lr, "dtype": args.dtype, "seed": seed, "train_size": args.train_size}
    hist = train_dcgan(x_train, epochs=args.epochs, batch_size=args.batch_size, out_dir=args.out, seed=seed, lr=lr,
                       progress=not args.no_progress, echo=True, dtype=args.dtype, config=config)
    print(f"generator loss {hist['g_loss'][-1]:.4f}, discriminator loss {hist['d_loss'][-1]:.4f} after "
          f"{_plural(len(hist['g_loss']), 'epoch')}; wrote samples_epoch_*.png, losses.png, history.json, "
          f"generator.npz and discriminator.npz to {args.out}")
    return 0


def _train(args):
    import numpy as np

    from .trainer import Trainer, TrainingDiverged

    if args.model == "dcgan":
        return _train_dcgan(args)
    if args.resume and _is_gan_run(args.out if args.out is not None else TRAIN_DEFAULTS["out"]):
        raise CommandError(f"--resume: {args.out or TRAIN_DEFAULTS['out']} holds a dcgan run, which keeps no "
                           "checkpoints to resume from; --overwrite replaces it, or choose another --out")
    ranks = _start_ranks()
    root = ranks == 1 or _dist().rank() == 0

    def settle():
        if args.resume and args.overwrite:
            raise CommandError(
                "--resume/--overwrite: one or the other (continue the run in --out, or replace it)"
            )
        resumed = _resolve_options(args)
        stored_ranks = (_stored_config(args.out) or {}).get("ranks", 1) if resumed else ranks
        if args.batch_per_rank and stored_ranks != ranks:
            launcher = f"mpiexec -n {stored_ranks} " if stored_ranks > 1 else ""
            raise CommandError(
                f"--resume: the run in {args.out} has --batch-per-rank on {_plural(stored_ranks, 'rank')}, "
                f"this job has {ranks}: its global batch would change; resume it with {launcher}fastconv train "
                f"--out {args.out} --resume"
            )
        previous = _previous_run(args.out)
        if previous is not None and not (args.resume or args.overwrite):
            raise CommandError(
                f"--out {args.out}: holds a run ({previous}); --resume continues it, --overwrite replaces "
                "it, or choose another --out"
            )
        if args.resume and not resumed and previous is not None:
            print(
                f"fastconv train: note: {args.out}/history.json holds no configuration; using the options "
                "given",
                file=sys.stderr,
            )
        return previous

    # Rank 0 alone reads --out (the ranks of a job on several machines may not share it): its options go to
    # every rank.
    previous, settled = _collectively(ranks, lambda: (settle(), vars(args)) if root else None, broadcast=True)
    vars(args).update(settled)
    out = args.out
    schedule_param = {}
    if args.step_size is not None:
        schedule_param["step_size"] = args.step_size
    if args.gamma is not None:
        schedule_param["gamma"] = args.gamma
    if schedule_param and args.schedule != "step":
        raise CommandError("--step-size/--gamma: only with --schedule step", agreed=True)
    if args.warmup:
        schedule_param["warmup_epochs"] = args.warmup
    optimizer_param = {"lr": args.lr}
    if args.weight_decay is not None:
        optimizer_param["weight_decay"] = args.weight_decay

    dtype = np.dtype(args.dtype).type
    if args.precision is not None:
        from . import precision as _precision

        if args.dtype != "float32":
            raise CommandError(f"--precision {args.precision}: not with --dtype {args.dtype}", agreed=True)
        try:
            net_dtype = _precision.dtype_of(args.precision)
        except ImportError as exc:
            raise CommandError(f"--precision {args.precision}: {exc}", agreed=True) from exc
    else:
        net_dtype = dtype
    _set_threads(args.threads)
    if args.seed is not None:
        # Dropout layers without their own seed draw from NumPy's global generator (as in the book).
        np.random.seed(args.seed)
    # every rank loads the data set (from its own machine) and builds the network; rank 0's weights win
    (x_train, t_train), (x_test, t_test) = _collectively(ranks, lambda: _load_data(args, dtype))
    # every model of MODELS runs in float16 / bfloat16 (tests/test_half.py::test_models_in_half)
    network = _collectively(ranks, lambda: _build_model(args.model, net_dtype, args.seed))

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

    def make_out():
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"--out {out}: {exc}") from exc

    _collectively(ranks, lambda: make_out() if root else None)
    config = {key: value for key, value in vars(args).items() if key not in ("command", "data_source")}
    config["ranks"] = ranks
    history_path = os.path.join(out, "history.json")
    running = {"config": config, "status": "running", "pid": os.getpid(), "host": socket.gethostname()}

    def save_history(trainer, **extra):
        if root:  # rank 0 alone writes the run's files
            _write(history_path, lambda p: trainer.save_history(p, extra={**running, **extra}))

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
                checkpoint_interval=60.0 * args.checkpoint_every if args.checkpoint_every > 0 else None,
                on_epoch_end=save_history,
                distributed=ranks > 1,
                batch_per_rank=args.batch_per_rank,
                precision=args.precision,
            )
        # Under mpiexec every rank meets the same error here: the same arguments, and what rank 0 found in
        # the checkpoint directory (sent to every rank)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc), agreed=True) from exc
        except OSError as exc:  # the checkpoint directory cannot be made, listed or cleaned
            path = os.fspath(exc.filename) if exc.filename is not None else checkpoint_dir
            raise CommandError(f"{path}: {_reason(exc, path)}", agreed=True) from exc
    _relay([w for w in caught if str(w.message).startswith("resume: ")], "train")
    _relay([w for w in caught if not str(w.message).startswith("resume: ")], "train")
    if args.overwrite and root:
        _remove_run_files(out)

    import fastconv

    schedule = "" if args.schedule == "none" else f" {args.schedule}"
    batch = f"batch {args.batch_size}"
    threads = _plural(fastconv.get_num_threads(), "thread")
    if ranks > 1:
        batch = f"batch {trainer.batch_size} ({_split(trainer.batch_size, ranks)} per rank)"
        threads = f"{ranks} ranks x {threads}"
    if root:
        print(
            f"fastconv train: {args.model} on {args.dataset}, {_plural(args.epochs, 'epoch')} of "
            f"{_plural(trainer.iter_per_epoch, 'step')}, {batch}, {args.optimizer} lr {args.lr:g}"
            f"{schedule}{', augmented' if augment is not None else ''}, {_numerics(args)}, "
            f"{threads}, seed {_describe(args.seed)}\n"
            f"data: {len(x_train):,} train / {len(x_test):,} test images from {args.data_source}\n"
            f"out: {out}{' (replacing the run there)' if previous and args.overwrite else ''}",
            flush=True,
        )
    try:
        save_history(trainer)
        trainer.train()
    except TrainingDiverged as exc:  # under mpiexec: on every rank after the same step
        save_history(trainer, status="diverged", diverged=str(exc))
        if root:
            print(f"fastconv: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.filename is None:  # not a file the trainer writes (its writer names the file): not ours
            raise
        path = os.fspath(exc.filename)
        last = trainer.last_checkpoint or "none"
        raise CommandError(f"{path}: cannot write ({_reason(exc, path)}); last checkpoint: {last}") from exc
    except KeyboardInterrupt:
        if ranks > 1 and not trainer.interrupted:  # a second Ctrl-C: not after a step the ranks agreed on
            raise
        save_history(trainer, status="interrupted")
        if not root:
            return 130
        it, ipe = trainer.current_iter, trainer.iter_per_epoch
        step = it % ipe or (ipe if it else 0)
        epoch = trainer.current_epoch + (1 if it % ipe else 0)
        launcher = f"mpiexec -n {ranks} " if ranks > 1 else ""
        print(
            f"\nfastconv train: interrupted in epoch {epoch}/{trainer.epochs} after step {step}/{ipe} "
            f"(iteration {it}); checkpoint: {trainer.last_checkpoint or 'none'}\n"
            f"continue with: {launcher}fastconv train --out {out} --resume",
            file=sys.stderr,
        )
        return 130

    if not root:
        return 0
    params_path = os.path.join(out, "params.npz")
    _write(params_path, network.save_params)
    save_history(trainer, status="finished")
    written = [params_path, history_path]
    title = (
        f"{MODEL_TITLES[args.model]} on {DATASET_TITLES[args.dataset]}: {trainer.result_text()}\n"
        f"{args.optimizer} lr {args.lr:g}{schedule}, {batch}"
        f"{', augmented' if augment is not None else ''}, {_numerics(args)}, {len(x_train):,} training images"
    )
    try:
        _write(os.path.join(out, "curves.png"), lambda p: trainer.plot(p, title=title))
        written.append(os.path.join(out, "curves.png"))
    except ImportError:
        print('note: curves.png not written (matplotlib is not installed: pip install "fastconv[plot]")')
    rate = trainer.examples_per_sec_list[-1] if trainer.examples_per_sec_list else 0.0
    print(
        f"test accuracy {trainer.final_test_acc:.4f} ({len(x_test):,} test images), {rate:,.0f} examples/s "
        f"in the last epoch; wrote {', '.join(written)} (fastconv runs {out} shows the run)"
    )
    return 0


def _evaluate(args):
    import numpy as np

    _set_threads(args.threads)
    if not os.path.isfile(args.params):
        raise CommandError(f"--params {args.params}: no such file")
    history_path = os.path.join(os.path.dirname(args.params) or ".", "history.json")
    try:
        config = _stored_config(os.path.dirname(args.params) or ".") or {}
    except CommandError:
        config = {}
    if args.model is None:
        if config.get("model") not in MODELS:
            raise CommandError(
                f"--model: needed: no history.json beside --params {args.params} names the model that wrote "
                f"it (--model {{{','.join(MODELS)}}})"
            )
        args.model = config["model"]
        print(f"model {args.model} (from {history_path})")
    if args.dataset is None:
        args.dataset = config.get("dataset") if config.get("dataset") in DATASETS else "fashion-mnist"
    if args.dtype is None:
        args.dtype = config.get("dtype") if config.get("dtype") in ("float32", "float64") else "float32"
    dtype = np.dtype(args.dtype).type
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


def _size(path):
    n = os.path.getsize(path)
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


def _command(config, out):
    """The run's configuration as the ``fastconv train`` command that starts it (options off left out)."""
    ranks = config.get("ranks")
    words = ([f"mpiexec -n {ranks}"] if isinstance(ranks, int) and ranks > 1 else []) + ["fastconv train"]
    for key in ("model", "dataset", "epochs", *RUN_OPTIONS[2:]):
        value = config.get(key)
        if (
            value is None
            or value is False
            or (key == "warmup" and value == 0)
            or (key == "schedule" and value == "none")
        ):
            continue
        words.append(_option(key) if value is True else f"{_option(key)} {_describe(value)}")
    return " ".join(words + [f"--out {out}"])


def _show_run(out):
    """Print a run's status, configuration, per-epoch metrics and files."""
    from .checkpoint import _read_checkpoint

    history_path = os.path.join(out, "history.json")
    history = _read_json(history_path)
    checkpoints = _checkpoints(out)
    if history is None:  # an interrupted run of an earlier fastconv: its newest checkpoint has the metrics
        for path in reversed(checkpoints):
            try:
                meta, _ = _read_checkpoint(path)
            except (OSError, ValueError):
                continue
            lists = meta["lists"]
            history = {
                "status": "interrupted",
                "current_iter": meta["current_iter"],
                "current_epoch": meta["current_epoch"],
                "iter_per_epoch": meta["iter_per_epoch"],
                "train_acc": lists["train_acc_list"],
                "test_acc": lists["test_acc_list"],
                "epoch_train_loss": lists["epoch_loss_list"],
                "lr": lists["lr_list"],
            }
            break
        else:
            raise CommandError(f"{out}: no history.json and no readable checkpoint: not a fastconv run")
    print(f"run {out}: {_status(history, out)}")
    config = history.get("config")
    if isinstance(config, dict):
        print(f"command: {_command(config, out)}")
    if _gan_history(history):
        _show_gan_epochs(history)
    else:
        _show_epochs(history)
    print("files:")
    for name in RUN_FILES + GAN_FILES:
        path = os.path.join(out, name)
        if os.path.exists(path):
            print(f"  {name:18s}{path} ({_size(path)})")
    samples = _gan_samples(out)
    if samples:
        print(f"  {'samples':18s}{samples[0]} ... {os.path.basename(samples[-1])} ({len(samples)} PNGs)")
    if checkpoints:
        names = ", ".join(os.path.basename(p) for p in checkpoints)
        print(f"  {'checkpoints':18s}{os.path.join(out, 'checkpoints')}: {names} (newest last)")


def _show_table(head, rows, note=None):
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    if note:
        print(note)


def _show_gan_epochs(history):
    """A dcgan run's losses per epoch."""
    g, d, t = (history.get(key) or [] for key in ("g_loss", "d_loss", "epoch_time_s"))
    rows = [[str(i + 1), f"{g[i]:.4f}", f"{d[i]:.4f}" if i < len(d) else "-", f"{t[i]:.1f}" if i < len(t) else "-"]
            for i in range(len(g))]
    if rows:
        _show_table(("epoch", "generator loss", "discriminator loss", "time s"), rows)
    else:
        print("no epoch finished yet")


def _show_epochs(history):
    """A classifier run's metrics per epoch."""
    columns = (
        ("test_acc", ".4f"),
        ("test_loss", ".4f"),
        ("train_acc", ".4f"),
        ("train_eval_loss", ".4f"),
        ("epoch_running_train_acc", ".4f"),
        ("epoch_train_loss", ".4f"),
        ("lr", ".3g"),
        ("examples_per_sec", ",.0f"),
        ("epoch_time_s", ".1f"),
    )
    rows = []
    for i in range(len(history.get("test_acc") or [])):
        row = [str(i + 1)]
        for key, fmt in columns:
            values = history.get(key) or []
            value = values[i] if i < len(values) else None
            row.append("-" if value is None else format(value, fmt))
        rows.append(row)
    if rows:
        head = (
            "epoch",
            "test acc",
            "test loss",
            "train acc",
            "train loss",
            "running acc",
            "running loss",
            "lr",
            "ex/s",
            "time s",
        )
        _show_table(head, rows, "(test and train: inference mode; running: the epoch's batches in training mode)")
    else:
        print("no epoch finished yet")


def _runs(args):
    out = args.dir
    if not os.path.isdir(out):
        raise CommandError(f"{out}: no such directory")
    if _previous_run(out) is not None:
        _show_run(out)
        return 0
    runs = sorted(name for name in os.listdir(out) if _previous_run(os.path.join(out, name)) is not None)
    if not runs:
        raise CommandError(
            f"{out}: holds no fastconv run (no history.json, params.npz or checkpoints/ in it "
            "or in a directory in it)"
        )
    for name in runs:
        path = os.path.join(out, name)
        try:
            history = _read_json(os.path.join(path, "history.json"))
        except CommandError as exc:
            print(f"{path}: {exc}")
            continue
        config = (history or {}).get("config") or {}
        what = f"{config.get('model', '?')} on {config.get('dataset', '?')}" if config else "?"
        status = _status(history, path).split(";")[0] if history is not None else "no history.json"
        print(f"{path}: {what}, {status}")
    print(f"(fastconv runs {os.path.join(out, runs[0])} shows one run in full)")
    return 0


def run(args) -> int:
    """Run a parsed ``train``, ``evaluate`` or ``runs`` command; user errors print one line and return 2."""
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "runs":
            return _runs(args)
        raise CommandError(f"unknown command {args.command!r}")
    except CommandError as exc:
        text = f"fastconv {args.command}: error: {_one_line(exc)}"
        if _multi_rank() and not exc.agreed:  # one rank's error: the others would wait for it forever
            _dist().abort(text, 2)
        if not _multi_rank() or _dist().rank() == 0:
            print(text, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the training loop, which handles its own
        if _multi_rank():
            _dist().abort(f"fastconv {args.command}: interrupted", 130)
        print(f"\nfastconv {args.command}: interrupted", file=sys.stderr)
        return 130
