"""The ``fastconv`` command: ``train`` end to end on a few real Fashion-MNIST images (in process and in a
subprocess), ``evaluate``, ``--resume``, divergence, and clear exit-code-2 errors for bad options, missing or
corrupt data and parameter files that do not fit the model."""

import errno
import json
import os
import pickle
import struct
import subprocess
import sys

import fastconv
import fastconv.datasets
import fastconv.models
import fastconv.trainer
import numpy as np
import pytest
from conftest import no_real_data
from fastconv.__main__ import main

# A quick run: 200 training images, 100 test images, SimpleConvNet, one epoch of 4 steps.
QUICK = [
    "--model",
    "simpleconvnet",
    "--train-size",
    "200",
    "--test-size",
    "100",
    "--epochs",
    "1",
    "--batch-size",
    "50",
    "--eval-samples",
    "100",
    "--seed",
    "0",
    "--no-progress",
]


@pytest.fixture(autouse=True)
def _keep_threads():
    n = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(n)


@pytest.fixture(scope="module")
def have_data():
    try:
        fastconv.datasets.load_fashion_mnist(flatten=False, download=False)
    except FileNotFoundError as exc:
        no_real_data(exc)


def strict_json(path):
    def no_nan(name):
        raise AssertionError(f"{path}: non-standard JSON constant {name}")

    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=no_nan)


def train(tmp_path, *extra, out="run"):
    return main(["train", *QUICK, "--out", str(tmp_path / out), *extra])


# ======================================================================================================
# train and evaluate


def test_train_writes_params_history_curves_and_checkpoints(tmp_path, capsys, have_data):
    assert train(tmp_path) == 0
    out, err = capsys.readouterr()
    run = tmp_path / "run"
    assert "fastconv train: simpleconvnet on fashion-mnist, 1 epoch of 4 steps, batch 50" in out
    assert "\ndata: 200 train / 100 test images from " in out
    assert "epoch 1/1: test acc" in out and "(inference mode" in out and "ex/s" in out
    assert "test accuracy" in out and "Traceback" not in err
    hist = strict_json(run / "history.json")
    assert len(hist["train_loss"]) == 4 and len(hist["test_acc"]) == 1
    assert 0 <= hist["final_test_acc"] <= 1 and hist["examples_per_sec"][0] > 0
    assert hist["config"]["model"] == "simpleconvnet" and hist["config"]["lr"] == 0.001
    assert hist["optimizer"] == "Adam"
    assert os.listdir(run / "checkpoints") == ["epoch-0001.npz"]
    with np.load(run / "params.npz", allow_pickle=False) as p:
        assert sorted(p.files) == ["W1", "W2", "W3", "b1", "b2", "b3"] and p["W1"].dtype == np.float32
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert (
            'note: curves.png not written (matplotlib is not installed: pip install "fastconv[plot]")' in out
        )
        assert not (run / "curves.png").exists()
    else:
        assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_reproduces_the_final_test_accuracy(tmp_path, capsys, have_data):
    assert train(tmp_path) == 0
    hist = strict_json(tmp_path / "run" / "history.json")
    capsys.readouterr()
    rc = main(
        [
            "evaluate",
            "--model",
            "simpleconvnet",
            "--params",
            str(tmp_path / "run" / "params.npz"),
            "--test-size",
            "100",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert out.strip() == (
        f"test accuracy {hist['final_test_acc']:.4f} (simpleconvnet on 100 fashion-mnist test images)"
    )


def test_resume_continues_from_the_last_checkpoint(tmp_path, capsys, have_data):
    assert train(tmp_path) == 0
    capsys.readouterr()
    assert train(tmp_path, "--epochs", "2", "--resume") == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch-0001.npz (epoch 1, iteration 4)" in out
    assert "epoch 1/2" not in out and "epoch 2/2" in out
    hist = strict_json(tmp_path / "run" / "history.json")
    assert len(hist["train_loss"]) == 8 and len(hist["test_acc"]) == 2
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["epoch-0001.npz", "epoch-0002.npz"]


def test_options_reach_the_run(tmp_path, capsys, have_data, monkeypatch):
    built = []
    real = fastconv.trainer.make_optimizer
    monkeypatch.setattr(fastconv.trainer, "make_optimizer", lambda *a: built.append(real(*a)) or built[-1])
    rc = train(
        tmp_path,
        "--dtype",
        "float64",
        "--threads",
        "1",
        "--optimizer",
        "Momentum",
        "--lr",
        "0.01",
        "--schedule",
        "cosine",
        "--warmup",
        "0.5",
        "--shift",
        "2",
        "--rotation",
        "5",
        "--flip",
        "--weight-decay",
        "1e-4",
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "momentum lr 0.01 cosine, augmented, float64, 1 thread, seed 0" in out
    assert fastconv.get_num_threads() == 1
    hist = strict_json(tmp_path / "run" / "history.json")
    assert hist["optimizer"] == "Momentum" and hist["config"]["flip"] is True
    assert hist["config"]["weight_decay"] == 1e-4
    assert len(built) == 1 and built[0].weight_decay == 1e-4 and built[0].momentum == 0.9
    # warm-up over the first 2 of 4 steps, then the cosine: the lr of the last step is below the base
    assert 0 < hist["lr"][0] < 0.01
    with np.load(tmp_path / "run" / "params.npz", allow_pickle=False) as p:
        assert p["W1"].dtype == np.float64


def test_divergence_exits_1_and_keeps_the_history(tmp_path, capsys, have_data):
    rc = train(tmp_path, "--optimizer", "sgd", "--lr", "1e30", "--epochs", "2")
    err = capsys.readouterr().err
    assert rc == 1
    assert "fastconv: training diverged at iteration" in err and "Traceback" not in err
    hist = strict_json(tmp_path / "run" / "history.json")
    assert "diverged" in hist and hist["final_test_acc"] is None
    assert not (tmp_path / "run" / "params.npz").exists()


def test_train_and_evaluate_in_a_subprocess(tmp_path, have_data):
    env = dict(os.environ, PYTHONWARNINGS="error")
    run = subprocess.run(
        [sys.executable, "-m", "fastconv", "train", *QUICK, "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "epoch 1/1" in run.stdout and run.stderr == ""
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastconv",
            "evaluate",
            "--model",
            "deepconvnet",
            "--params",
            str(tmp_path / "r" / "params.npz"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 2
    assert "does not fit --model deepconvnet" in bad.stderr and "Traceback" not in bad.stderr


def test_info_still_works(capsys):
    assert main(["info"]) == 0
    assert "simd" in capsys.readouterr().out


# ======================================================================================================
# errors: exit code 2 and one message, no traceback


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
        (["train", "--batch-size", "x"], "argument --batch-size: expected an integer, got 'x'"),
        (["train", "--lr", "-1"], "argument --lr: expected a finite number > 0"),
        (["train", "--lr", "nan"], "argument --lr: expected a finite number > 0"),
        (["train", "--model", "resnet50"], "argument --model: invalid choice: 'resnet50'"),
        (["train", "--optimizer", "adamw"], "argument --optimizer: invalid choice: 'adamw'"),
        (["train", "--dtype", "float16"], "argument --dtype: invalid choice"),
        (["train", "--threads", "0"], "argument --threads"),
        (["train", "--rotation", "200"], "argument --rotation"),
        (["train", "--dataset", "cifar10"], "argument --dataset: invalid choice"),
        (["evaluate", "--model", "lenet"], "the following arguments are required: --params"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_options_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    assert needle in capsys.readouterr().err


def run_error(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("fastconv "), err  # one line, the CLI's own
    return err


def test_step_options_need_the_step_schedule(tmp_path, capsys, have_data):
    err = run_error(["train", *QUICK, "--out", str(tmp_path / "r"), "--gamma", "0.5"], capsys)
    assert "--step-size/--gamma: only with --schedule step" in err


def test_train_size_beyond_the_data(tmp_path, capsys, have_data):
    err = run_error(["train", *QUICK, "--train-size", "70000", "--out", str(tmp_path / "r")], capsys)
    assert "--train-size 70000: fashion-mnist has only 60000 images there" in err


def test_missing_data_reports_the_loader_message(tmp_path, capsys, monkeypatch):
    def missing(**kwargs):
        raise FileNotFoundError("fashion-mnist: the four IDX files were not found. Searched: ...")

    monkeypatch.setattr(fastconv.datasets, "load_fashion_mnist", missing)
    err = run_error(["train", *QUICK, "--out", str(tmp_path / "r")], capsys)
    assert "fastconv train: error: fashion-mnist: the four IDX files were not found" in err
    err = run_error(
        ["train", *QUICK, "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")], capsys
    )
    assert f"--data-dir {tmp_path / 'nowhere'}: no such directory" in err


def test_corrupt_data_files(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (data / name).write_bytes(b"\x00\x00\x08\x03garbage")
    err = run_error(
        ["train", *QUICK, "--data-dir", str(data), "--no-download", "--out", str(tmp_path / "r")], capsys
    )
    assert "fastconv train: error:" in err and str(data) in err


def test_evaluate_errors(tmp_path, capsys, have_data):
    err = run_error(["evaluate", "--model", "lenet", "--params", str(tmp_path / "none.npz")], capsys)
    assert f"--params {tmp_path / 'none.npz'}: no such file" in err
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip file")
    err = run_error(["evaluate", "--model", "lenet", "--params", str(junk)], capsys)
    assert f"fastconv evaluate: error: --params {junk}: " in err  # a file that cannot be read at all
    other = tmp_path / "other.npz"
    params = dict(fastconv.models.build("simpleconvnet", seed=0).params)
    params["W2"] = params["W2"][:-1]  # all names right, one shape wrong
    np.savez(other, **params)
    err = run_error(["evaluate", "--model", "simpleconvnet", "--params", str(other)], capsys)
    assert "does not fit --model simpleconvnet" in err and "W2 has shape (4319, 100)" in err


def test_same_seed_same_parameters_with_dropout(tmp_path, capsys, have_data):
    """DeepConvNet (dropout draws from NumPy's global generator, seeded by --seed): two runs, same result."""
    argv = [
        "train",
        "--model",
        "deepconvnet",
        "--train-size",
        "100",
        "--test-size",
        "50",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--eval-samples",
        "50",
        "--seed",
        "3",
        "--no-progress",
        "--augment",
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    with np.load(tmp_path / "a" / "params.npz") as a, np.load(tmp_path / "b" / "params.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert (
        strict_json(tmp_path / "a" / "history.json")["train_loss"]
        == strict_json(tmp_path / "b" / "history.json")["train_loss"]
    )


# ------------------------------------------------------------------------------------------------------
# parameter files that cannot be read: one line naming --params, never a traceback


def _pickles(tmp_path):
    marker = tmp_path / "pwned"
    # os.system("touch <marker>") as a protocol-0 pickle: the restricted reader must refuse the global
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    whole = pickle.dumps({"W1": np.zeros((3, 3), np.float32)}, protocol=2)
    return marker, {
        "refused-global": evil,
        "truncated": whole[: len(whole) // 2],
        "empty": b"",
        "non-array-value": pickle.dumps({"W1": [1.0, 2.0]}),
        "not-a-dict": pickle.dumps([np.zeros(3)]),
    }


@pytest.mark.parametrize("case", ["refused-global", "truncated", "empty", "non-array-value", "not-a-dict"])
def test_params_files_that_cannot_be_read(tmp_path, capsys, case):
    marker, files = _pickles(tmp_path)
    path = tmp_path / f"{case}.pkl"
    path.write_bytes(files[case])
    err = run_error(["evaluate", "--model", "lenet", "--params", str(path)], capsys)
    assert err.startswith(f"fastconv evaluate: error: --params {path}: "), err
    assert "does not fit" not in err  # the file is at fault, not the model
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------------
# images the model cannot take: refused before training, naming the data


def _idx(path, array):
    head = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(head + array.astype(np.uint8).tobytes())


def _data_dir(tmp_path, n, h, w):
    data = tmp_path / f"data-{n}-{h}x{w}"
    data.mkdir()
    for split in ("train", "t10k"):
        _idx(data / f"{split}-images-idx3-ubyte", np.zeros((n, h, w)))
        _idx(data / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    return data


@pytest.mark.parametrize(
    "n, h, w, needle",
    [
        (20, 0, 0, "the training images are 1x0x0 (zero-sized); --model lenet takes 1x28x28"),
        (20, 28, 0, "the training images are 1x28x0 (zero-sized); --model lenet takes 1x28x28"),
        (20, 10, 10, "the training images are 1x10x10; --model lenet takes 1x28x28"),
        (0, 28, 28, "there are no training images"),
    ],
)
def test_train_refuses_images_the_model_cannot_take(tmp_path, capsys, n, h, w, needle):
    data = _data_dir(tmp_path, n, h, w)
    argv = ["train", "--model", "lenet", "--data-dir", str(data), "--no-download", "--no-progress"]
    err = run_error([*argv, "--epochs", "1", "--batch-size", "10", "--out", str(tmp_path / "r")], capsys)
    assert err == f"fastconv train: error: --data-dir {data}: {needle}\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("n, h, w, needle", [(20, 0, 0, "1x0x0 (zero-sized)"), (0, 28, 28, "no test images")])
def test_evaluate_refuses_images_the_model_cannot_take(tmp_path, capsys, n, h, w, needle):
    data = _data_dir(tmp_path, n, h, w)
    params = tmp_path / "p.npz"
    fastconv.models.build("lenet", seed=0).save_params(params)
    argv = ["evaluate", "--model", "lenet", "--params", str(params), "--data-dir", str(data), "--no-download"]
    err = run_error(argv, capsys)
    assert err.startswith(f"fastconv evaluate: error: --data-dir {data}: ") and needle in err


# ------------------------------------------------------------------------------------------------------
# files that cannot be written (a full disk): one line naming the file, and nothing written before is lost


class _FullDisk:
    """A file object whose writes fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, f, room=64):
        self._f, self._room = f, room

    def write(self, data):
        data = bytes(data)
        if len(data) > self._room:
            self._f.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(name)``: from then on, the (temporary) file written for ``name`` hits a full disk."""
    names, fds = [], set()
    real_open, real_fdopen = os.open, os.fdopen

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):
        fd = real_open(path, flags, mode, dir_fd=dir_fd)
        if flags & os.O_CREAT and any(f".{name}." in os.path.basename(path) for name in names):
            fds.add(fd)
        return fd

    def fake_fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return _FullDisk(f) if fd in fds else f

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "fdopen", fake_fdopen)
    return names.append


@pytest.mark.parametrize("target", ["epoch-0002.npz", "params.npz", "history.json", "curves.png"])
def test_full_disk_while_writing(tmp_path, capsys, have_data, full_disk, target):
    if target == "curves.png":
        pytest.importorskip("matplotlib")
    assert train(tmp_path) == 0
    run = tmp_path / "run"
    path = run / "checkpoints" / target if target.startswith("epoch") else run / target
    first = run / "checkpoints" / "epoch-0001.npz"
    before = path.read_bytes() if path.exists() else None
    first_bytes = first.read_bytes()
    capsys.readouterr()
    full_disk(target)
    err = run_error(["train", *QUICK, "--out", str(run), "--epochs", "2", "--resume"], capsys)
    assert err.startswith(f"fastconv train: error: {path}: cannot write (No space left on device)"), err
    if target.startswith("epoch"):
        assert err.endswith(f"; last checkpoint: {first}\n") and not path.exists()
    else:
        assert path.read_bytes() == before  # the file of the first run, untouched
    assert first.read_bytes() == first_bytes
    left = [p.name for p in run.rglob("*")]
    assert not [name for name in left if name.startswith(".")], left  # no temporary file left behind


# ------------------------------------------------------------------------------------------------------
# --resume past a checkpoint that a power loss left empty


def test_resume_skips_an_unreadable_newest_checkpoint(tmp_path, capsys, have_data):
    assert train(tmp_path, "--epochs", "2", out="straight") == 0
    assert train(tmp_path, "--epochs", "2") == 0
    checkpoints = tmp_path / "run" / "checkpoints"
    (checkpoints / "epoch-0002.npz").write_bytes(b"")
    (checkpoints / ".epoch-0002.npz.0123abcd.tmp").write_bytes(b"PK\x03\x04")  # a killed write's temporary
    capsys.readouterr()
    assert train(tmp_path, "--epochs", "2", "--resume") == 0
    out, err = capsys.readouterr()
    assert f"resumed from {checkpoints / 'epoch-0001.npz'} (epoch 1, iteration 4)" in out
    assert err.startswith(
        f"fastconv train: warning: resume: skipped 1 newer checkpoint that cannot be read "
        f"({checkpoints / 'epoch-0002.npz'}: cannot read checkpoint"
    )
    assert len(err.splitlines()) == 1
    assert sorted(os.listdir(checkpoints)) == ["epoch-0001.npz", "epoch-0002.npz"]
    with np.load(tmp_path / "straight" / "params.npz") as a, np.load(tmp_path / "run" / "params.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_resume_with_no_readable_checkpoint_exits_2(tmp_path, capsys, have_data):
    assert train(tmp_path) == 0
    checkpoints = tmp_path / "run" / "checkpoints"
    (checkpoints / "epoch-0001.npz").write_bytes(b"")
    capsys.readouterr()
    err = run_error(["train", *QUICK, "--out", str(tmp_path / "run"), "--epochs", "2", "--resume"], capsys)
    assert err.startswith(f"fastconv train: error: resume: no checkpoint in {checkpoints} can be read: ")


def test_checkpoint_directory_that_cannot_be_made(tmp_path, capsys, have_data):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("a file where the directory should be")
    err = run_error(["train", *QUICK, "--out", str(tmp_path / "run")], capsys)
    assert err.startswith(f"fastconv train: error: {tmp_path / 'run' / 'checkpoints'}: ")


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_threads_over_the_limit_is_a_cli_error(tmp_path, capsys, command):
    """--threads above fastconv's thread limit: one line naming the option, exit 2, nothing written."""
    argv = (
        [command, "--threads", str(10**6), "--out", str(tmp_path / "r")]
        if command == "train"
        else [command, "--threads", str(10**6), "--params", str(tmp_path / "p.npz")]
    )
    if command == "evaluate":
        fastconv.models.build("lenet").save_params(tmp_path / "p.npz")
        argv += ["--model", "lenet"]
    err = run_error(argv, capsys)
    assert f"--threads {10**6}: at most " in err and " n: " not in err
    assert not (tmp_path / "r").exists()


# ======================================================================================================
# issue 19: no lost runs, resume with --out alone, honest progress, the plot, messages, `fastconv runs`


def tree(directory):
    """{relative path: bytes} of every file under ``directory``."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_a_used_out_is_never_overwritten_without_overwrite(tmp_path, capsys, have_data, monkeypatch):
    """issue 19 item 1: a second run into the same --out silently replaced params, history, curves and
    checkpoints. Now it is refused (exit 2, nothing touched) unless --overwrite (or --resume)."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *QUICK, "--epochs", "2"]) == 0  # the default --out, fastconv-run
    run = tmp_path / "fastconv-run"
    before = tree(run)
    assert {"params.npz", "history.json", "checkpoints/epoch-0002.npz"} <= set(before)
    capsys.readouterr()
    err = run_error(["train", *QUICK, "--model", "lenet"], capsys)
    assert err.startswith("fastconv train: error: --out fastconv-run: holds a run (finished: test accuracy ")
    assert "files history.json, params.npz" in err and "checkpoints/ (2)" in err
    assert err.endswith("--resume continues it, --overwrite replaces it, or choose another --out\n")
    assert tree(run) == before
    # --overwrite replaces it: the old run's files go, the new run's come
    assert main(["train", *QUICK, "--model", "lenet", "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "out: fastconv-run (replacing the run there)" in out
    assert sorted(os.listdir(run / "checkpoints")) == ["epoch-0001.npz"]
    assert strict_json(run / "history.json")["config"]["model"] == "lenet"
    err = run_error(["train", *QUICK, "--resume", "--overwrite"], capsys)
    assert "--resume/--overwrite: one or the other" in err


def test_an_empty_or_unrelated_out_directory_is_fine(tmp_path, capsys, have_data):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert train(tmp_path) == 0
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


# A child that runs `fastconv train` and sends itself SIGINT in the middle of step ``stop`` (counted from 0
# over the whole run), between the gradient and the optimizer's update: a real signal at the worst moment.
_SIGINT_CHILD = """
import os, signal, sys
import fastconv.models
from fastconv.__main__ import main

# as in a terminal (a child of a CI job or of `cmd &` may inherit SIGINT ignored, and Python keeps that)
signal.signal(signal.SIGINT, signal.default_int_handler)

stop, calls = int(sys.argv[1]), [0]
real = fastconv.models.DeepConvNet.gradient

def gradient(self, x, t):
    grads = real(self, x, t)
    if calls[0] == stop:
        os.kill(os.getpid(), signal.SIGINT)
    calls[0] += 1
    return grads

fastconv.models.DeepConvNet.gradient = gradient
sys.exit(main(sys.argv[2:]))
"""

# DeepConvNet (dropout from NumPy's global generator), augmentation (its own generator): 4 steps per epoch.
DEEP = [
    "--model", "deepconvnet", "--train-size", "200", "--test-size", "50", "--epochs", "2",
    "--batch-size", "50",
    "--eval-samples", "50", "--seed", "5", "--augment", "--no-progress",
]  # fmt: skip


def _child(args, tmp_path, check_rc):
    run = subprocess.run(
        [sys.executable, "-c", _SIGINT_CHILD, *args],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        env=dict(os.environ, PYTHONWARNINGS="error"),
    )  # fmt: skip
    assert run.returncode == check_rc, run.stdout + run.stderr
    return run


def _same_run(a, b):
    with np.load(a / "params.npz") as pa, np.load(b / "params.npz") as pb:
        assert pa.files == pb.files
        for key in pa.files:
            assert pa[key].tobytes() == pb[key].tobytes(), key
    ha, hb = strict_json(a / "history.json"), strict_json(b / "history.json")
    timing = {"epoch_time_s", "examples_per_sec", "config", "pid"}
    assert {k: v for k, v in ha.items() if k not in timing} == {
        k: v for k, v in hb.items() if k not in timing
    }


def test_sigint_mid_epoch_then_resume_with_out_alone_is_bit_identical(tmp_path, have_data):
    """issue 19 item 2 (acceptance 3): SIGINT in epoch 2 lost the epoch (only the epoch-1 checkpoint existed)
    and `--out DIR --resume` refused the defaults. Now the interrupt writes a checkpoint after the step it
    fell in, exits 130, and `--out DIR --resume` alone ends bit-identical to an uninterrupted run."""
    _child(["-1", "train", *DEEP, "--out", "straight"], tmp_path, 0)
    stopped = _child(["5", "train", *DEEP, "--out", "cut"], tmp_path, 130)  # step 6 of 8: epoch 2, step 2/4
    ckpt = tmp_path / "cut" / "checkpoints" / "epoch-0001-step-000002.npz"
    assert "interrupted in epoch 2/2 after step 2/4 (iteration 6); checkpoint: " in stopped.stderr
    assert "continue with: fastconv train --out cut --resume" in stopped.stderr
    assert sorted(os.listdir(tmp_path / "cut" / "checkpoints")) == [
        "epoch-0001-step-000002.npz",
        "epoch-0001.npz",
    ]
    assert ckpt.exists() and "Traceback" not in stopped.stderr
    hist = strict_json(tmp_path / "cut" / "history.json")
    assert hist["status"] == "interrupted" and hist["current_iter"] == 6
    resumed = subprocess.run(
        [sys.executable, "-m", "fastconv", "train", "--out", "cut", "--resume"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"resumed from {os.path.join('cut', 'checkpoints', ckpt.name)} (epoch 1 + 2 steps, iteration 6)"
        in (resumed.stdout)
    )
    assert "fastconv train: deepconvnet on fashion-mnist, 2 epochs of 4 steps, batch 50" in resumed.stdout
    _same_run(tmp_path / "straight", tmp_path / "cut")
    assert sorted(os.listdir(tmp_path / "cut" / "checkpoints")) == ["epoch-0001.npz", "epoch-0002.npz"]


def test_resume_takes_the_stored_options_and_refuses_only_conflicting_ones(tmp_path, capsys, have_data):
    assert train(tmp_path, "--optimizer", "momentum", "--lr", "0.01", "--augment") == 0
    capsys.readouterr()
    run = str(tmp_path / "run")
    err = run_error(["train", "--out", run, "--resume", "--lr", "0.02", "--model", "lenet", "--flip"], capsys)
    assert err.startswith(
        "fastconv train: error: --resume: --model lenet (the run has simpleconvnet), --lr 0.02 (the run has "
        "0.01), --flip (the run was started without it): --resume continues the run in "
    )
    # options equal to the stored ones, and those that do not define the run, are fine; --epochs may grow
    argv = ["train", "--out", run, "--resume", "--lr", "0.01", "--augment", "--threads", "1", "--epochs", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "simpleconvnet on fashion-mnist, 2 epochs of 4 steps, batch 50, momentum lr 0.01, augmented" in out
    hist = strict_json(tmp_path / "run" / "history.json")
    assert hist["status"] == "finished" and len(hist["test_acc"]) == 2 and hist["config"]["train_size"] == 200


def test_files_of_a_run_follow_the_umask(tmp_path, capsys, have_data):
    """issue 19 item 3: params.npz, curves.png, history.json and checkpoints were created 0600."""
    old = os.umask(0o022)
    try:
        assert train(tmp_path) == 0
    finally:
        os.umask(old)
    run = tmp_path / "run"
    modes = {str(p.relative_to(run)): oct(p.stat().st_mode & 0o777) for p in run.rglob("*")}
    expected = {name: oct(0o644) for name in ("params.npz", "history.json", "checkpoints/epoch-0001.npz")}
    expected["checkpoints"] = oct(0o755)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        expected["curves.png"] = oct(0o644)
    assert modes == expected
    assert oct(run.stat().st_mode & 0o777) == oct(0o755)


def test_progress_and_epoch_line_numbers_can_be_compared(tmp_path, capsys, have_data, monkeypatch):
    """issue 19 item 4: the bar showed training-mode batch numbers (acc 0.39) unlabelled beside an epoch
    line's inference-mode 'train acc 0.851'. Now both say which is which, and the bar ends on the epoch line's
    running
    numbers."""
    import fastconv.trainer as ftrainer

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setattr(ftrainer, "_PLAIN_MIN_INTERVAL", 0.0)
    assert main(["train", *[a for a in QUICK if a != "--no-progress"], "--out", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    bar = err.splitlines()[-1]
    epoch = next(line for line in out.splitlines() if line.startswith("epoch 1/1: "))
    running = bar.split("  ")[1]  # "running acc A loss L (training mode)"
    assert bar.startswith("epoch 1/1 100% 4/4  running acc ") and running.endswith(" (training mode)")
    assert f"| {running} |" in epoch
    hist = strict_json(tmp_path / "r" / "history.json")
    acc, loss = hist["test_acc"][0], hist["test_loss"][0]
    train_acc, train_loss = hist["train_acc"][0], hist["train_eval_loss"][0]
    assert epoch.startswith(
        f"epoch 1/1: test acc {acc:.4f} loss {loss:.4f} | train acc {train_acc:.4f} loss "
        f"{train_loss:.4f} (inference mode, first 100) | running acc "
    )


def test_the_plot_has_a_title_test_loss_a_zoomed_axis_and_legends_off_the_data(
    tmp_path, capsys, have_data, monkeypatch
):
    """issue 19 item 5: no title, train loss only, accuracy fixed to 0-1, a legend that could cover the
    curves."""
    pytest.importorskip("matplotlib")
    from fastconv.trainer import Trainer

    titles = []
    real = Trainer.figure

    def figure(self, *, title=None):
        fig = real(self, title=title)
        titles.append((self, fig))
        return fig

    monkeypatch.setattr(Trainer, "figure", figure)
    assert train(tmp_path, "--epochs", "2") == 0
    ((trainer, fig),) = titles
    title = fig._suptitle.get_text()
    assert title.startswith(
        f"SimpleConvNet on Fashion-MNIST: test accuracy {trainer.final_test_acc:.2%} (100 images)"
    )
    ax_loss, ax_acc = fig.axes
    labels = [line.get_label() for line in ax_loss.get_lines()]
    assert "test" in labels and "train (inference mode)" in labels
    assert ax_loss.get_xlabel() == "epoch" and ax_acc.get_xlabel() == "epoch"
    # the accuracy axis spans the values, not 0-1
    values = trainer.train_acc_list + trainer.test_acc_list + [trainer.final_test_acc]
    low, high = ax_acc.get_ylim()
    assert low <= min(values) and high >= max(values) and high - low <= max(values) - min(values) + 0.05
    # legends outside the axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box, legend = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
        assert legend.y1 < box.y0, (ax.get_ylabel(), legend, box)


def test_plot_zooms_on_high_accuracies():
    pytest.importorskip("matplotlib")
    import fastconv.trainer as ftrainer

    x = np.zeros((20, 1, 28, 28), np.float32)
    tr = ftrainer.Trainer(
        fastconv.models.build("lenet", seed=0),
        x,
        np.zeros(20, int),
        x,
        np.zeros(20, int),
        epochs=3,
        verbose=False,
    )
    tr.train_acc_list, tr.test_acc_list = [0.84, 0.88, 0.91], [0.83, 0.86, 0.89]
    tr.train_eval_loss_list, tr.test_loss_list = [0.5, 0.4, 0.3], [0.55, 0.45, 0.4]
    tr.train_loss_list = list(np.linspace(2.3, 0.3, 3 * tr.iter_per_epoch))
    tr.current_epoch, tr.final_test_acc = 3, 0.891
    fig = tr.figure()
    low, high = fig.axes[1].get_ylim()
    assert 0.80 <= low <= 0.83 and 0.91 <= high <= 0.93
    assert fig._suptitle.get_text() == "LeNet: test accuracy 89.10% (20 images) after 3 epochs"


def test_evaluate_takes_the_model_from_the_history_beside_the_params(tmp_path, capsys, have_data):
    """issue 19 item 6: `evaluate` required --model although the run records it."""
    assert train(tmp_path) == 0
    hist = strict_json(tmp_path / "run" / "history.json")
    capsys.readouterr()
    params = str(tmp_path / "run" / "params.npz")
    assert main(["evaluate", "--params", params, "--test-size", "100"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"model simpleconvnet (from {tmp_path / 'run' / 'history.json'})\n"
        f"test accuracy {hist['final_test_acc']:.4f} (simpleconvnet on 100 fashion-mnist test images)\n"
    )
    lone = tmp_path / "lone.npz"
    lone.write_bytes((tmp_path / "run" / "params.npz").read_bytes())
    err = run_error(["evaluate", "--params", str(lone)], capsys)
    assert err.startswith(
        f"fastconv evaluate: error: --model: needed: no history.json beside --params {lone} "
    )


def test_truncated_and_text_params_files_are_named_as_such(tmp_path, capsys, have_data):
    """issue 19 item 6: a truncated file 'does not fit --model lenet: File is not a zip file'; a text file got
    NumPy's allow_pickle advice."""
    good = tmp_path / "good.npz"
    fastconv.models.build("lenet", seed=0).save_params(good)
    cut, text = tmp_path / "cut.npz", tmp_path / "text.npz"
    cut.write_bytes(good.read_bytes()[:3000])
    text.write_text("W1 = [[0.1, 0.2]]\n")
    err = run_error(["evaluate", "--model", "lenet", "--params", str(cut)], capsys)
    assert err == (
        f"fastconv evaluate: error: --params {cut}: truncated or damaged .npz archive (the zip "
        "directory at its end is missing)\n"
    )
    err = run_error(["evaluate", "--model", "lenet", "--params", str(text)], capsys)
    assert err.startswith(f"fastconv evaluate: error: --params {text}: not an .npz archive: ")
    assert "allow_pickle" not in err and "does not fit" not in err


def test_data_source_in_the_header_and_an_empty_fastconv_data_said(tmp_path, capsys, have_data, monkeypatch):
    """issue 19 item 6: an empty FASTCONV_DATA was passed over silently and the header said nothing of where
    the data came from."""
    directory, source = fastconv.datasets.locate("fashion-mnist", download=False)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "empty"))
    assert train(tmp_path) == 0
    out, err = capsys.readouterr()
    assert f"data: 200 train / 100 test images from {directory} ({source})\n" in out
    assert err.startswith(
        "fastconv train: warning: fashion-mnist: the IDX files are not where you pointed "
        f"({tmp_path / 'empty'} "
        "($FASTCONV_DATA): missing train-images-idx3-ubyte[.gz]"
    )
    assert err.rstrip().endswith(f"using {directory} ({source})") and len(err.splitlines()) == 1
    err = run_error(
        ["train", *QUICK, "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "x")], capsys
    )
    assert err.startswith(
        f"fastconv train: error: --data-dir {tmp_path / 'empty'}: missing train-images-idx3"
    )


def test_missing_data_suggests_cli_options_not_python_arguments(tmp_path, capsys, monkeypatch):
    """issue 19 item 6: the missing-MNIST error told a CLI user about path= and download=True."""
    import fastconv.datasets as ds

    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ds, "_SYSTEM_ROOT", tmp_path / "system")
    err = run_error(
        ["train", *QUICK, "--dataset", "mnist", "--no-download", "--out", str(tmp_path / "r")], capsys
    )
    assert err.startswith("fastconv train: error: mnist: the four IDX files were not found (searched: ")
    assert "To get them: download them from https://" in err
    assert "pass --data-dir DIR" in err and "leave out --no-download" in err
    assert "path=" not in err and "download=True" not in err and "download=False" not in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["train", "--dataset", "/some/path"],
            (
                "argument --dataset: '/some/path' is a path; --dataset takes a "
                "name (fashion-mnist, mnist), and --data-dir /some/path the directory holding its four "
                "IDX files"
            ),
        ),
        (["evaluate", "--params", "p.npz", "--dataset", "./data"], "--data-dir ./data"),
    ],
)
def test_a_path_given_as_dataset_points_to_data_dir(argv, needle, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2 and needle in capsys.readouterr().err


def test_train_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["train", "--help"])
    assert ei.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for needle in (
        "(default: deepconvnet)",
        "(default: fashion-mnist)",
        "(default: 5)",
        "(default: 100)",
        "(default: adam)",
        "(default: 0.001)",
        "(default: float32)",
        "(default: fastconv-run)",
        "(default: 10000)",
        "--overwrite",
        "--resume",
    ):
        assert needle in out, needle


def test_runs_shows_a_run_and_lists_runs(tmp_path, capsys, have_data):
    """issue 19: `fastconv runs DIR` prints a run's status, configuration, per-epoch metrics and files."""
    assert train(tmp_path, "--epochs", "2") == 0
    hist = strict_json(tmp_path / "run" / "history.json")
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["runs", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"run {run}: finished: test accuracy {hist['final_test_acc']:.2%} (100 images) after 2 epochs"
    )
    assert lines[1] == (
        "command: fastconv train --model simpleconvnet --dataset fashion-mnist --epochs 2 --batch-size 50 "
        f"--optimizer adam --lr 0.001 --dtype float32 --seed 0 --train-size 200 --test-size 100 "
        f"--eval-samples 100 --out {run}"
    )
    assert lines[2].split() == [
        "epoch",
        "test",
        "acc",
        "test",
        "loss",
        "train",
        "acc",
        "train",
        "loss",
        "running",
        "acc",
        "running",
        "loss",
        "lr",
        "ex/s",
        "time",
        "s",
    ]
    assert lines[3].split()[:3] == ["1", f"{hist['test_acc'][0]:.4f}", f"{hist['test_loss'][0]:.4f}"]
    assert lines[4].split()[0] == "2" and lines[6] == "files:"
    assert any(line.split()[:2] == ["params.npz", str(run / "params.npz")] for line in lines)
    assert (
        lines[-1].strip()
        == f"checkpoints       {run / 'checkpoints'}: epoch-0001.npz, epoch-0002.npz (newest last)"
    )
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{run}: simpleconvnet on fashion-mnist, finished: test accuracy ")
    err = run_error(["runs", str(tmp_path / "run" / "checkpoints")], capsys)
    assert "holds no fastconv run" in err


def test_runs_shows_an_interrupted_run(tmp_path, capsys, have_data, monkeypatch):
    import signal

    import fastconv.trainer as ftrainer

    real = ftrainer.Trainer._step

    def step(self):
        if self.current_iter == 5:
            os.kill(os.getpid(), signal.SIGINT)
        real(self)

    monkeypatch.setattr(ftrainer.Trainer, "_step", step)
    # Python's own SIGINT handler, as in a terminal (a CI job's process may have SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert train(tmp_path, "--epochs", "2", "--batch-size", "40") == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"run {tmp_path / 'run'}: interrupted after 1 epoch and 1 of 5 steps of 2 done; "
        f"continue it with: fastconv train --out {tmp_path / 'run'} --resume\n"
    )
    assert "epoch-0001-step-000001.npz" in out


# ======================================================================================================
# the block networks and the DCGAN


def test_train_and_resume_a_batch_norm_network(tmp_path, capsys, have_data):
    """ResNet through the Trainer: its batch-norm running statistics go into the checkpoint, so a resumed run
    continues from the same statistics, and the params file loads back into the network."""
    sizes = ("--model", "resnet", "--train-size", "100", "--test-size", "50")
    assert train(tmp_path, *sizes) == 0
    capsys.readouterr()
    assert train(tmp_path, *sizes, "--epochs", "2", "--resume") == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch 2/2" in out
    with np.load(tmp_path / "run" / "checkpoints" / "epoch-0002.npz", allow_pickle=False) as ck:
        stats = [k for k in ck.files if k.startswith("buffer/") and k.endswith("running_var")]
    assert len(stats) == 21  # every batch norm of ResNet-20 (19 convolutions + 2 projections)
    net = fastconv.models.build("resnet")
    net.load_params(str(tmp_path / "run" / "params.npz"))


def test_train_dcgan_writes_samples_losses_and_both_networks(tmp_path, capsys, have_data):
    out = tmp_path / "gan"
    rc = main(["train", "--model", "dcgan", "--epochs", "1", "--train-size", "64", "--batch-size", "32",
               "--no-progress", "--threads", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "generator loss" in text
    hist = strict_json(out / "history.json")
    assert len(hist["g_loss"]) == len(hist["d_loss"]) == 1 and all(np.isfinite(hist["g_loss"]))
    for name in ("generator.npz", "discriminator.npz"):
        with np.load(out / name, allow_pickle=False) as p:
            assert p.files and all(np.isfinite(p[k]).all() for k in p.files)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert (out / "samples_epoch_001.png").read_bytes()[:4] == b"\x89PNG"
    # a second run into the same --out is refused without --overwrite; --resume is not offered
    assert main(["train", "--model", "dcgan", "--epochs", "1", "--out", str(out)]) == 2
    assert main(["train", "--model", "dcgan", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a run" in err and "--resume: not available with --model dcgan" in err


def _gan(out, *extra):
    return main(["train", "--model", "dcgan", "--train-size", "64", "--batch-size", "32", "--no-progress",
                 "--threads", "1", "--out", str(out), *extra])


def test_dcgan_runs_are_described_resumed_never_and_replaced_whole(tmp_path, capsys, have_data):
    """A dcgan run: its history says what it was started with and how many epochs finished; `--resume` without
    --model refuses it instead of training a classifier over it; --overwrite by a dcgan or a classifier run removes
    every file the other kind wrote (stale samples included), the user's own files stay."""
    out = tmp_path / "gan"
    assert _gan(out, "--epochs", "2") == 0
    text = capsys.readouterr().out
    assert text.startswith("fastconv train: dcgan on fashion-mnist, 2 epochs of 2 steps, batch 32, adam lr 0.0001")
    assert "epoch 1/2: generator loss" in text and "epoch 2/2: generator loss" in text  # without the bar too
    hist = strict_json(out / "history.json")
    assert hist["status"] == "finished" and hist["current_epoch"] == 2 and hist["config"]["model"] == "dcgan"
    assert main(["runs", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "a dcgan run, finished after 2 epochs" in shown and "generator loss" in shown
    assert "generator.npz" in shown
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["train", "--resume", "--out", str(out), "--threads", "1"]) == 2
    assert "holds a dcgan run" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # untouched
    (out / "notes.txt").write_text("mine")
    assert _gan(out, "--epochs", "1", "--overwrite") == 0
    assert not (out / "samples_epoch_002.png").exists()  # the 2-epoch run's stale sample is gone
    assert len(strict_json(out / "history.json")["g_loss"]) == 1
    assert main(["train", "--model", "lenet", "--epochs", "1", "--train-size", "64", "--test-size", "32",
                 "--no-progress", "--threads", "1", "--out", str(out), "--overwrite"]) == 0
    left = sorted(p.name for p in out.iterdir())
    assert not any(n.startswith(("generator", "discriminator", "losses", "samples_")) for n in left), left
    assert "notes.txt" in left and "params.npz" in left
    assert _gan(out, "--epochs", "1", "--overwrite") == 0
    left = sorted(p.name for p in out.iterdir())
    assert "params.npz" not in left and "curves.png" not in left and "notes.txt" in left, left
    assert not list(out.glob("checkpoints/*.npz"))


def test_dcgan_takes_the_tutorials_batch_and_rate_unless_given(tmp_path, capsys, have_data):
    out = tmp_path / "gan"
    assert main(["train", "--model", "dcgan", "--train-size", "64", "--out", str(out)]) == 2
    assert "--batch-size 256: larger than the 64 training images" in capsys.readouterr().err
    assert main(["train", "--model", "dcgan", "--train-size", "64", "--batch-size", "64", "--epochs", "1",
                 "--no-progress", "--threads", "1", "--out", str(out)]) == 0
    assert "batch 64, adam lr 0.0001," in capsys.readouterr().out
    assert strict_json(out / "history.json")["config"]["lr"] == 1e-4


@pytest.mark.parametrize("extra, flag", [
    (("--batch-size", "100"), "--batch-size 100: larger than the 64 training images"),
    (("--precision", "float16"), "--precision: not available with --model dcgan"),
    (("--flip",), "--flip: not available with --model dcgan"),
    (("--optimizer", "sgd"), "--optimizer: not available with --model dcgan"),
    (("--schedule", "cosine"), "--schedule: not available with --model dcgan"),
    (("--test-size", "10"), "--test-size: not available with --model dcgan"),
    (("--checkpoint-every", "1"), "--checkpoint-every: not available with --model dcgan"),
])
def test_dcgan_refuses_what_it_cannot_do_before_writing(tmp_path, capsys, have_data, extra, flag):
    out = tmp_path / "gan"
    args = ["train", "--model", "dcgan", "--train-size", "64", "--no-progress", "--threads", "1", "--out", str(out)]
    if "--batch-size" not in extra:
        args += ["--batch-size", "32"]
    assert main(args + list(extra)) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# ======================================================================================================
# --precision (mixed-precision training, fastconv.precision)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_train_mixed_precision(tmp_path, capsys, have_data, precision):
    pytest.importorskip("ml_dtypes")
    assert train(tmp_path, "--precision", precision) == 0
    out, err = capsys.readouterr()
    assert f", {precision} mixed precision," in out and "Traceback" not in err
    hist = strict_json(tmp_path / "run" / "history.json")
    assert hist["precision"] == precision and hist["config"]["precision"] == precision
    assert hist["loss_scale"] == [65536.0 if precision == "float16" else 1.0]
    assert len(hist["skipped_steps"]) == 1 and 0 <= hist["final_test_acc"] <= 1
    with np.load(tmp_path / "run" / "params.npz", allow_pickle=False) as p:  # bfloat16 is stored as float32
        assert p["W1"].dtype == (np.float16 if precision == "float16" else np.float32)


@pytest.mark.parametrize("extra, match", [
    (["--precision", "float16", "--dtype", "float64"], "--precision float16: not with --dtype float64"),
])
def test_train_precision_errors(tmp_path, capsys, have_data, extra, match):
    err = run_error(["train", *QUICK, "--out", str(tmp_path / "run"), *extra], capsys)
    assert match in err
