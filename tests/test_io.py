"""fastconv.io: atomic .npz writes, .npz / book .pkl loads, and the restricted unpickler refusing code."""

import collections
import importlib.util
import os
import pickle
import pickletools
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

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


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_file_mode_follows_umask(tmp_path, umask, mode):
    """The temporary file is renamed into place: it must be created with the umask's mode, not 0600."""
    old = os.umask(umask)
    try:
        fio.save_params({"a": np.zeros(2)}, tmp_path / "p.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "p.npz").stat().st_mode & 0o777 == mode


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
    with pytest.raises(ValueError, match=r"pickled\.npz: not an \.npz archive \(it starts like a pickle"):
        fio.load_params(tmp_path / "pickled.npz")


def test_messages_say_what_the_file_is(tmp_path):
    """issue 19: a text file and a truncated archive got zipfile's / pickle's words ("File is not a zip
    file", "memo entry 101 was never stored"), and the CLI called the truncated one a model mismatch."""
    (tmp_path / "text.npz").write_text("hello world\n")
    (tmp_path / "text.pkl").write_text("hello world\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    fio.save_params({"a": np.zeros(100)}, tmp_path / "whole.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:500])
    expected = {
        "text.npz": "text.npz: not an .npz archive: an .npz starts with the zip signature b'PK\\x03\\x04', "
        "this file with b'hello world\\n'",
        "text.pkl": "text.pkl: not a pickle of parameters: a pickled dict starts with b'\\x80' (protocols "
        "2-5) or one of b'(}]c' (0-1), this file with b'hello world\\n'",
        "empty.npz": "empty.npz: empty file (0 bytes), not an .npz archive",
        "cut.npz": "cut.npz: truncated or damaged .npz archive (the zip directory at its end is missing)",
    }
    for name, message in expected.items():
        with pytest.raises(fio.ParamFileError) as info:
            fio.load_params(tmp_path / name, expected={"a": (100,)})
        assert str(info.value) == f"{tmp_path}/{message}", name
        assert not isinstance(info.value, fio.ParamMismatchError)  # the file is at fault, not the model
        text = str(info.value).lower()
        assert "allow_pickle" not in text and "not a zip file" not in text and "memo" not in text


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


# ======================================================================================================
# files from strangers: the book's real files, crafted pickles and archives, the fuzzing harness

BOOK = Path(__file__).parent / "data" / "book"
CORPUS = Path(__file__).parent / "data" / "fuzz_io"
HARNESS = Path(__file__).parent / "fuzz_io.py"


def _harness():
    """tests/fuzz_io.py as a module (its generators build the crafted files below)."""
    spec = importlib.util.spec_from_file_location("fuzz_io", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["deep_convnet_params.pkl", "sample_weight.pkl"])
def test_book_published_files_bit_exact(name):
    """The book's own published files load as a trusted pickle.load gives them, bit for bit and layout."""
    path = BOOK / name
    with open(path, "rb") as f:
        want = pickle.load(f, encoding="latin1")  # the project's own copy: trusted
    got = fio.load_params(path)
    assert list(got) == list(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert got[key].flags.f_contiguous == value.flags.f_contiguous, key
        assert got[key].flags.writeable, key
        assert got[key].tobytes(order="A") == value.tobytes(order="A"), key


def test_book_deep_convnet_file_loads_into_the_network():
    """fastconv's DeepConvNet takes the book's pretrained file as the book's network does."""
    from fastconv.models import DeepConvNet

    with open(BOOK / "deep_convnet_params.pkl", "rb") as f:
        want = pickle.load(f)
    net = DeepConvNet(dtype=np.float64)
    net.load_params(BOOK / "deep_convnet_params.pkl")
    for key, value in want.items():
        assert net.params[key].tobytes() == value.tobytes(), key


def _crafted_dtype_pickles():
    """The issue's memory-corrupting dtype states, through each array constructor, protocols 2 and 5."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:
        from numpy.core import multiarray, numeric
    R = _harness().R
    states = {
        "object field outside the item": ("V8", (3, "|", None, ("a",), {"a": (np.dtype("O"), 100000)}, 8, 1, 63)),
        "negative field offset": ("V8", (3, "|", None, ("a",), {"a": (np.dtype("f8"), -16)}, 8, 1, 0)),
        "object subarray": ("V8", (3, "|", (np.dtype("O"), (1000,)), None, None, 8, 1, 0)),
        "has-objects flag cleared": ("O8", (3, "|", None, None, None, -1, -1, 0)),
        "float64 spec, object flags": ("f8", (3, "<", None, None, None, -1, -1, 63)),
        "float64 spec, fields": ("f8", (3, "<", None, ("a",), {"a": (np.dtype("O"), 0)}, -1, -1, 0)),
    }
    for what, (spec, state) in states.items():
        dt = R(np.dtype, (spec, False, True), state)
        for protocol in (2, 5):
            yield f"{what}, _reconstruct, protocol {protocol}", pickle.dumps(
                {"W1": R(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (2,), dt, False, [1, 2]))},
                protocol=protocol)
            yield f"{what}, scalar, protocol {protocol}", pickle.dumps(
                {"W1": R(multiarray.scalar, (dt, b"\0" * 8))}, protocol=protocol)
        yield f"{what}, _frombuffer, protocol 5", pickle.dumps(
            {"W1": R(numeric._frombuffer, (pickle.PickleBuffer(bytearray(16)), dt, (2,), "C"))}, protocol=5)


def test_crafted_dtype_states_refused(tmp_path):
    """Each crafted file is refused with a ValueError naming the dtype, never loaded and never a crash."""
    for what, data in _crafted_dtype_pickles():
        path = tmp_path / "evil.pkl"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=r"evil\.pkl: .*(dtype|state)") as info:
            fio.load_params(path)
        assert isinstance(info.value, pickle.UnpicklingError), what


def test_crafted_files_do_not_crash_a_process(tmp_path):
    """The same files in a fresh process through the CLI-facing loader: it exits normally (no SIGSEGV)."""
    for i, (_, data) in enumerate(_crafted_dtype_pickles()):
        (tmp_path / f"evil{i}.pkl").write_bytes(data)
    code = ("import sys, fastconv.io as f\n"
            "for p in sys.argv[1:]:\n"
            "    try: f.load_params(p)\n"
            "    except ValueError: pass\n"
            "    else: raise SystemExit(p + ' loaded')\n")
    files = sorted(str(p) for p in tmp_path.glob("evil*.pkl"))
    run = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("kind", ["tuple key", "tuple value", "list value", "dict value", "marks"])
def test_deep_nesting_refused(kind):
    """Nesting a million deep (the C stack would overflow on hashing, repr or free) is refused early."""
    n = 1_000_000
    w = b"X\x01\x00\x00\x00W"
    body = {"tuple key": b"N" + b"\x85" * n + b"N",
            "tuple value": w + b"N" + b"\x85" * n,
            # each APPEND / SETITEM puts the top container into the one below (100,000: the opcode cap
            # would refuse a million before the depth check is reached)
            "list value": w + b"]" * (n // 10) + b"a" * (n // 10 - 1),
            "dict value": w + b"}N" * (n // 10) + b"}" + b"s" * (n // 10),
            "marks": w + b"(" * n + b"N" + b"t" * n}[kind]
    match = "too many open MARKs" if kind == "marks" else "nested deeper than 32"
    with pytest.raises(ValueError, match=match):
        fio.safe_pickle_load(b"\x80\x02}(" + body + b"u.")


def test_reused_bytes_cannot_multiply_memory():
    """One memoised 800 kB buffer referenced by 100 arrays would build 80 MB from a small file: refused."""
    data = _harness()._amplify(b"\0" * 800_000, 100)
    assert len(data) < 1_000_000
    with pytest.raises(ValueError, match="builds more data than it holds"):
        fio.safe_pickle_load(data)


@pytest.mark.parametrize("payload, match", [
    (b"\x80\x02cnumpy\nndarray\n.", "global ndarray used as a value"),
    (b"\x80\x02]q\x00h\x00a.", "container put inside itself"),
    (b"\x80\x05\x97.", r"NEXT_BUFFER \(out-of-band data\)"),
    (b"\x80\x02U\x01a.", "Python 2 str"),
    (b"\x80\x02\x8f.", r"EMPTY_SET \(sets\)"),
    (b"\x80\x02K\x01K\x02.", "values left on the stack"),
    (b"\x80\x02K\x01", "no STOP"),
    (b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7fab.", "truncated pickle"),
])
def test_pickle_opcodes_outside_the_subset_refused(payload, match):
    with pytest.raises(ValueError, match=match):
        fio.safe_pickle_load(payload)


def test_mutating_a_nested_list_refused():
    """A list placed in a tuple then grown through the memo could hide depth: refused."""
    payload = b"\x80\x02]q\x00\x85q\x01h\x00K\x01a."
    with pytest.raises(ValueError, match="changed after it was put inside another container"):
        fio.safe_pickle_load(payload)


def _zip(members, **kw):
    return _harness().zip_bytes(members, **kw)


def _npy(descr, shape, **kw):
    return _harness().npy(descr, shape, **kw)


def test_npz_duplicate_and_foreign_members_refused(tmp_path):
    good = _npy("<f4", (2, 3))
    cases = {
        "dup": ([("W.npy", good), ("W.npy", _npy("<f8", (1,)))], r"duplicate members \['W\.npy'\]"),
        "text": ([("W.npy", good), ("notes.txt", b"hello")], r"member 'notes\.txt' is not an \.npy array"),
        "notnpy": ([("W.npy", b"hello, not an array")], r"member 'W\.npy': not \.npy data"),
        "trailing": ([("W.npy", good + b"x")], r"zip directory says (\d+) bytes, the \.npy header (?!\1)\d+"),
    }
    for name, (members, match) in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(_zip(members))
        with pytest.raises(ValueError, match=match):
            fio.load_params(path)


def test_npz_bomb_refused_before_inflating(tmp_path):
    """A 1.3 MB archive whose member really inflates to 1.25 GiB: refused from its header, nothing inflated."""
    path = tmp_path / "bomb.npz"
    n = (5 << 30) // 4 // 8
    header = _npy("<f8", (n,), data=b"")
    path.write_bytes(_harness().zip_bomb(header, n * 8))
    assert path.stat().st_size < 2_000_000
    with zipfile.ZipFile(path) as zf, zf.open("W.npy") as f:  # genuine: it inflates as announced
        assert f.read(len(header)) == header and f.read(4096) == bytes(4096)
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb\.npz: member 'W\.npy': an array of shape .* needs 1342177280 "
                                         r"bytes, over the limit of 1073741824"):
        fio.load_params(path)
    elapsed, peak = time.perf_counter() - t, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 16 << 20, (elapsed, peak)


def test_npz_expected_shapes_checked_before_inflating(tmp_path, monkeypatch):
    from fastconv import _safeload

    path = tmp_path / "p.npz"
    fio.save_params({"W": np.zeros((3, 4)), "b": np.zeros(4)}, path)
    monkeypatch.setattr(_safeload, "_read_member", lambda *a, **k: pytest.fail("inflated before checking"))
    for expected, match in [({"W": (3, 5), "b": (4,)}, r"W has shape \(3, 4\), expected \(3, 5\)"),
                            ({"W": (3, 4)}, r"unexpected entries \['b'\]"),
                            ({"W": (3, 4), "b": (4,), "c": (1,)}, r"missing parameters \['c'\]")]:
        with pytest.raises(ValueError, match=match):
            fio.load_params(path, expected=expected)
    with pytest.raises(ValueError, match="over the limit of 100"):
        fio.load_params(path, max_bytes=100)


def test_fuzz_harness_in_subprocess():
    """>= 20,000 mutated real files and crafted inputs, plus the committed corpus, in a child process: no
    crash, no hang, no exception but ValueError / TypeError. A crash names the input to replay."""
    runs = [[str(HARNESS), "--count", "20000", "--seed", "2026"], [str(HARNESS), "--replay", str(CORPUS)]]
    for args in runs:
        try:
            run = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired as exc:
            last = (exc.stdout or b"").decode(errors="replace").strip().splitlines()[-1:]
            pytest.fail(f"fuzz run {args} hung after {last}")
        lines = run.stdout.strip().splitlines()
        where = f"{args}: exit {run.returncode}, last lines {lines[-3:]}, stderr {run.stderr[-2000:]}"
        assert run.returncode == 0, where
        if "--count" in args:
            assert lines[-1].startswith("20000 inputs") and lines[-1].endswith(" 0 failures"), where
        else:
            assert int(lines[-1].split()[0]) >= 100 and lines[-1].endswith(" 0 failures"), where
