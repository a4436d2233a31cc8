"""The ``fastconv`` command: ``train`` end to end on a few real Fashion-MNIST images (in process and in a
subprocess), ``evaluate``, ``--resume``, divergence, and clear exit-code-2 errors for bad options, missing or
corrupt data and parameter files that do not fit the model."""

import json
import os
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
    assert "fastconv train: simpleconvnet on fashion-mnist (200 train / 100 test images)" in out
    assert "epoch 1/1  train loss" in out and "test acc" in out and "ex/s" in out
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
    assert "momentum lr 0.01 cosine, augmented, float64, 1 threads" in out
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
        (["train", "--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
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
    assert "does not fit --model lenet" in err
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
