"""fastconv.io: atomic .npz writes, .npz / book .pkl loads, and the restricted unpickler refusing code."""

import collections
import os
import pickle
import pickletools

import fastconv.io as fio
import numpy as np
import pytest


def sample_params(rng):
    return {
        "W1": rng.standard_normal((3, 1, 5, 5)).astype(np.float32),
        "b1": np.zeros(3, np.float32),
        "W2": rng.standard_normal((7, 4)),
        "gamma1": np.ones(4, np.float16),
        "idx": np.arange(5, dtype=np.int64),
    }


def assert_same(got, want):
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        assert got[key].shape == want[key].shape, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def listing(path):
    return sorted(os.listdir(path))


# ======================================================================================================
# .npz


def test_npz_round_trip(rng, tmp_path):
    params = sample_params(rng)
    path = tmp_path / "p.npz"
    fio.save_params(params, path)
    assert listing(tmp_path) == ["p.npz"]
    assert_same(fio.load_params(path), params)
    assert_same(fio.load_params(str(path)), params)
    # a plain NumPy archive, no pickle inside
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(params)


def test_npz_overwrite_replaces(rng, tmp_path):
    path = tmp_path / "p.npz"
    fio.save_params({"a": np.zeros(2)}, path)
    fio.save_params({"b": np.ones(3)}, path)
    assert listing(tmp_path) == ["p.npz"]
    assert_same(fio.load_params(path), {"b": np.ones(3)})


def test_save_uses_rename_of_a_temp_file_in_the_same_dir(rng, tmp_path, monkeypatch):
    """The archive is fsynced, then os.replace(temp in the target's directory, target)."""
    calls = []
    real_replace, real_fsync = os.replace, os.fsync
    def fsync(fd):
        calls.append(("fsync", fd))
        return real_fsync(fd)

    def replace(a, b):
        calls.append(("replace", a, b))
        return real_replace(a, b)

    monkeypatch.setattr(fio.os, "fsync", fsync)
    monkeypatch.setattr(fio.os, "replace", replace)
    path = tmp_path / "p.npz"
    fio.save_params(sample_params(rng), path)
    kinds = [c[0] for c in calls]
    assert kinds.index("fsync") < kinds.index("replace")
    src, dst = next(c[1:] for c in calls if c[0] == "replace")
    assert os.path.dirname(os.path.abspath(src)) == str(tmp_path)
    assert dst == str(path)


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_atomic_write_failure_keeps_old_file(rng, tmp_path, monkeypatch, where):
    """A failure mid-write (writing, fsync, the rename) leaves the old file intact and no temporary file."""
    path = tmp_path / "p.npz"
    old = {"old": np.arange(4.0)}
    fio.save_params(old, path)
    old_bytes = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")

    if where == "write":
        real_savez = np.savez

        def savez_then_fail(f, **arrays):
            real_savez(f, **arrays)  # part of the archive reaches the temporary file
            f.write(b"partial")
            boom()

        monkeypatch.setattr(fio.np, "savez", savez_then_fail)
    else:
        monkeypatch.setattr(fio.os, where, boom)
    with pytest.raises(OSError, match="simulated"):
        fio.save_params(sample_params(rng), path)
    assert listing(tmp_path) == ["p.npz"]
    assert path.read_bytes() == old_bytes
    monkeypatch.undo()
    assert_same(fio.load_params(path), old)


def test_keyboard_interrupt_mid_write_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "p.npz"

    def interrupted(f, **arrays):
        f.write(b"PK\x03\x04half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fio.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fio.save_params({"a": np.zeros(2)}, path)
    assert listing(tmp_path) == []


def test_book_pkl_name_round_trip_without_pickle(rng, tmp_path):
    """The book saves to "params.pkl" and loads it back: the file holds .npz content, never a pickle."""
    params = {"W1": rng.standard_normal((3, 2)), "b1": rng.standard_normal(2).astype(np.float32)}
    path = tmp_path / "params.pkl"
    fio.save_params(params, path)
    assert path.read_bytes()[:4] == b"PK\x03\x04"
    back = fio.load_params(path)
    assert list(back) == ["W1", "b1"]
    for key in params:
        np.testing.assert_array_equal(back[key], params[key])
        assert back[key].dtype == params[key].dtype


def test_save_errors(tmp_path):
    with pytest.raises(TypeError, match="params: expected a dict"):
        fio.save_params([np.zeros(2)], tmp_path / "p.npz")
    with pytest.raises(TypeError, match="parameter names must be str"):
        fio.save_params({1: np.zeros(2)}, tmp_path / "p.npz")
    with pytest.raises(TypeError, match="parameter 'a' is a list"):
        fio.save_params({"a": [1.0, 2.0]}, tmp_path / "p.npz")
    with pytest.raises(ValueError, match="object arrays"):
        fio.save_params({"a": np.array([{}, None], dtype=object)}, tmp_path / "p.npz")
    with pytest.raises(TypeError, match=r"path: expected a str or os\.PathLike"):
        fio.save_params({"a": np.zeros(2)}, 3)
    with pytest.raises(FileNotFoundError):
        fio.save_params({"a": np.zeros(2)}, tmp_path / "missing_dir" / "p.npz")
    assert listing(tmp_path) == []


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter file type"):
        fio.load_params(tmp_path / "p.txt")
    with pytest.raises(FileNotFoundError):
        fio.load_params(tmp_path / "absent.npz")
    # an .npz holding an object array needs pickle: refused from its header
    np.savez(tmp_path / "obj.npz", a=np.array([{}, 1], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz: member 'a\.npy': dtype object: object arrays are not admitted"):
        fio.load_params(tmp_path / "obj.npz")
    # a bare .npy under an .npz name
    with open(tmp_path / "single.npz", "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        fio.load_params(tmp_path / "single.npz")
    # a pickle under an .npz name is not unpickled
    with open(tmp_path / "pickled.npz", "wb") as f:
        pickle.dump({"a": np.zeros(2)}, f)
    with pytest.raises(ValueError, match=r"pickled\.npz: not a readable \.npz archive \(BadZipFile"):
        fio.load_params(tmp_path / "pickled.npz")


# ======================================================================================================
# the book's .pkl


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_book_pickle_loads(rng, tmp_path, protocol):
    """``pickle.dump(params, f)`` as the book's save_params writes it, any protocol, dict or OrderedDict."""
    params = sample_params(rng)
    params["fortran"] = np.asfortranarray(rng.standard_normal((3, 4)))
    for container in (dict, collections.OrderedDict):
        path = tmp_path / f"params_{container.__name__}.pkl"
        with open(path, "wb") as f:
            pickle.dump(container(params), f, protocol=protocol)
        assert_same(fio.load_params(path), params)


def test_numpy1_module_names_admitted(rng):
    """Pickles written by NumPy 1.x name numpy.core.multiarray; NumPy 2.x writes numpy._core."""
    arr = rng.standard_normal(4)
    data = pickle.dumps({"W": arr}, protocol=2)
    names = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    core = "numpy._core" if any(n.startswith("numpy._core") for n in names) else "numpy.core"
    other = "numpy.core" if core == "numpy._core" else "numpy._core"
    swapped = data.replace(core.encode() + b".multiarray", other.encode() + b".multiarray")
    assert swapped != data
    np.testing.assert_array_equal(fio.safe_pickle_load(swapped)["W"], arr)


def test_pickle_must_hold_a_dict_of_arrays(tmp_path):
    cases = [
        ([np.zeros(2)], ValueError, "expected a pickled dict"),
        ({"a": [1.0, 2.0]}, TypeError, "parameter 'a' is a list"),
        ({"a": np.array([1, "x"], dtype=object)}, ValueError, "object arrays"),
        ({("W",): np.zeros(2)}, TypeError, "names must be str"),
    ]
    for i, (obj, exc, match) in enumerate(cases):
        path = tmp_path / f"bad{i}.pkl"
        with open(path, "wb") as f:
            pickle.dump(obj, f)
        with pytest.raises(exc, match=match):
            fio.load_params(path)


# ======================================================================================================
# malicious pickles


class _Evil:
    """Unpickling an instance would run ``func(*args)``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _write(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_os_system_refused_and_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "deep_convnet_params.pkl"
    _write(path, {"W1": np.zeros(2), "b1": _Evil(os.system, (f"touch {marker}",))}, protocol)
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|os|nt)\.system"):
        fio.load_params(path)
    assert not marker.exists()
    # the payload is real: plain pickle (what the book's load_params uses) runs the command
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize(
    "func, args, name",
    [
        (eval, ("__import__('os').system('echo hi')",), "builtins.eval"),
        (exec, ("x = 1",), "builtins.exec"),
        (getattr, ("text", "upper"), "builtins.getattr"),
        (open, ("/dev/null", "w"), "io.open"),
        (pickle.loads, (b"",), "_pickle.loads"),
        (np.load, ("x.npy",), "numpy.load"),
        (np.frombuffer, (b"abcd",), "numpy.frombuffer"),
        (collections.namedtuple, ("T", "a"), "collections.namedtuple"),
    ],
)
def test_other_globals_refused(tmp_path, func, args, name):
    path = tmp_path / "p.pkl"
    _write(path, {"W1": _Evil(func, args)})
    with pytest.raises(pickle.UnpicklingError, match=f"refused global {name}"):
        fio.load_params(path)


def test_file_creation_refused(tmp_path):
    """A pickle whose payload would create a file through open(): refused, the file is not created."""
    marker = tmp_path / "created.txt"
    path = tmp_path / "p.pkl"
    _write(path, collections.OrderedDict(W1=np.ones(3), evil=_Evil(open, (str(marker), "w"))))
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        fio.load_params(path)
    assert not marker.exists()


def test_codecs_encode_only_latin1():
    """Protocol 0-2 pickles rebuild bytes with _codecs.encode(text, 'latin1'); no other encoding passes."""
    payload = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(pickle.UnpicklingError, match="only latin1"):
        fio.safe_pickle_load(payload)
    assert fio.safe_pickle_load(b"c_codecs\nencode\n(Vabc\nVlatin1\ntR.") == b"abc"


def test_persistent_id_refused():
    payload = b"(dVW\nPabc\ns."  # {"W": persistent_load("abc")}
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        fio.safe_pickle_load(payload)


def test_globals_matched_exactly():
    """Globals are matched by exact (module, name): a numpy-looking path to another function is refused."""
    payload = b"cnumpy\nsystem\n(Vtrue\ntR."
    with pytest.raises(pickle.UnpicklingError, match=r"refused global numpy\.system"):
        fio.safe_pickle_load(payload)
