#!/usr/bin/env python3
"""Fuzzing harness for the parameter readers of fastconv.io (the book's .pkl and NumPy's .npz).

Every input must either load as a dict of plain numeric arrays or be refused with a ValueError / TypeError;
anything else (another exception, a crash of the process, a hang) is a failure. Three ways to run it:

    python tests/fuzz_io.py --count 20000 --seed 0     # deterministic: mutated real files + generators
    python tests/fuzz_io.py --replay tests/data/fuzz_io   # the committed regression corpus
    python tests/fuzz_io.py --atheris CORPUS_DIR -atheris_runs=1000000   # coverage-guided (pip install atheris)

Input i of a deterministic run depends only on (seed, i), so a crash is reproduced from the last index the
run printed (``--only I``). tests/test_io.py runs the first two in a subprocess, so a crash fails a test
instead of killing the suite, and names the input.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import random
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BOOK = HERE / "data" / "book"
LIMIT = 64 << 20  # max_bytes while fuzzing: crafted sizes are refused instead of allocated
SLOW = 2.0  # seconds; one input taking longer is reported as a hang


# ======================================================================================================
# the target


def check_one(data: bytes) -> str:
    """Load ``data`` as fastconv.io.load_params would; 'ok' or 'refused', raise on anything else."""
    from fastconv import _safeload
    from fastconv import io as fio

    try:
        if data[:4] == b"PK\x03\x04" or data[:6] == b"\x93NUMPY":
            params = _safeload.read_npz(io.BytesIO(data), max_bytes=LIMIT, where="fuzz.npz")
        else:
            obj = fio.safe_pickle_load(data, max_bytes=LIMIT)
            if not isinstance(obj, dict):
                return "refused"
            params = fio._check_params(obj, "fuzz.pkl")
    except (ValueError, TypeError):
        return "refused"
    for key, value in params.items():  # what a loaded file promises
        assert isinstance(key, str), key
        assert type(value) is np.ndarray and value.dtype.kind in "biufc", (key, value.dtype)
        assert value.flags.writeable and value.nbytes <= LIMIT, key
        zlib.crc32(value.tobytes(order="A"))  # the memory is really there
    return "ok"


# ======================================================================================================
# seeds: real parameter files in both formats


def sample_params(rng: np.random.Generator) -> dict:
    return {
        "W1": rng.standard_normal((3, 1, 3, 3)).astype(np.float32),
        "b1": np.zeros(3, np.float32),
        "W2": np.asfortranarray(rng.standard_normal((4, 5))),
        "g": np.ones(2, np.float16),
        "idx": np.arange(3, dtype=">i8"),
        "flag": np.array([True, False]),
        "c": np.array([1 + 2j], np.complex64),
        "empty": np.zeros((0, 3)),
        "scalar0d": np.array(2.5),
    }


def seeds() -> list:
    rng = np.random.default_rng(0)
    params = sample_params(rng)
    out = [p.read_bytes() for p in sorted(BOOK.glob("*.pkl"))]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        out.append(pickle.dumps(params, protocol=protocol))
        out.append(pickle.dumps(collections.OrderedDict(params), protocol=protocol))
    out.append(pickle.dumps({"s": np.float32(1.5), "t": np.int64(-3)}, protocol=2))
    for save in (np.savez, np.savez_compressed):
        buf = io.BytesIO()
        save(buf, **params)
        out.append(buf.getvalue())
    return out


# ======================================================================================================
# mutations


_OPCODES = sorted({v for k, v in vars(pickle).items() if k.isupper() and isinstance(v, bytes) and len(v) == 1})
_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x20, 0x40]


def mutate(r: random.Random, data: bytes, others: list) -> bytes:
    b = bytearray(data)
    for _ in range(r.choice((1, 1, 2, 3, 8))):
        if not b:
            b = bytearray(r.choice(others)[:16])
        op = r.randrange(9)
        i = r.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << r.randrange(8)
        elif op == 1:
            b[i] = r.choice(_INTERESTING)
        elif op == 2:
            b[i] = r.choice(_OPCODES)[0]
        elif op == 3:
            del b[i:i + r.randrange(1, 9)]
        elif op == 4:
            b[i:i] = bytes(r.randrange(256) for _ in range(r.randrange(1, 9)))
        elif op == 5:
            j = r.randrange(len(b))
            b[i:i] = b[j:j + r.randrange(1, 64)]
        elif op == 6:
            del b[r.randrange(len(b) + 1):]
        elif op == 7:  # a 4- or 8-byte length field set to something large or odd
            width = r.choice((4, 8))
            value = r.choice((0, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, len(b), len(b) + 1))
            b[i:i + width] = value.to_bytes(8, "little")[:width]
        else:  # splice with another seed
            other = r.choice(others)
            b = b[:i] + other[r.randrange(len(other)):]
    return bytes(b)


# ======================================================================================================
# structured pickles: the classes of crafted files


class R:
    """Pickles as the raw ``__reduce__`` tuple it is given (callable, args[, state ...])."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def _core():
    try:
        from numpy._core import multiarray, numeric
    except ImportError:
        from numpy.core import multiarray, numeric
    return multiarray, numeric


def gen_dtype_state(r: random.Random) -> bytes:
    """Arrays and scalars whose dtype carries a state NumPy would not validate."""
    multiarray, numeric = _core()
    spec = r.choice(["V8", "O8", "f8", "i4", "u1", "b1", "c16", "f2", "U3", "S4", "M8", "f16", "f8 ", "", "q"])
    fields = r.choice([
        None, {"a": (np.dtype("O"), r.choice((0, 8, 100000, -8)))},
        {"a": (np.dtype("f8"), -16)}, {"a": (np.dtype(("O", (r.randrange(1, 9),))), 0)}, {"a": ("x", 0)}, {},
    ])
    names = ("a",) if fields else r.choice([None, ("a",), ()])
    subdescr = r.choice([None, None, (np.dtype("O"), (r.randrange(1, 5000),)), (np.dtype("f8"), (2,))])
    state = (
        r.choice((3, 3, 4, 1, 99)), r.choice("<>|=x"), subdescr, names, fields,
        r.choice((-1, -1, 8, 0, 1, 2**40)), r.choice((-1, -1, 1, 8, 0)), r.choice((0, 0, 1, 63, -1, 16)),
    )
    if state[0] == 4:
        state += (r.choice((None, {}, {"m": 1})),)
    dt = R(np.dtype, (spec, r.choice((False, 0, True)), r.choice((True, 1, False))), state)
    n = r.choice((0, 1, 2, 3, 1000))
    raw = r.choice([bytes(8 * n), bytes(r.randrange(64)), [1, 2], "ab", None])
    shape = r.choice([(n,), (n, 1), (), (-1,), (2**62, 2**62), (1,) * 40, [n], (1.5,)])
    which = r.randrange(3)
    if which == 0:
        value = R(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dt, r.random() < 0.2, raw))
    elif which == 1:
        value = R(multiarray.scalar, (dt, raw if isinstance(raw, bytes) else b"\0" * 8))
    else:
        value = R(numeric._frombuffer, (pickle.PickleBuffer(bytearray(8 * n)), dt, shape, r.choice("CFK")))
    protocol = r.choice((2, 5)) if which != 2 else 5
    return pickle.dumps({"W1": value}, protocol=protocol)


def gen_depth(r: random.Random) -> bytes:
    """Containers nested thousands deep (tuples, lists, dicts), as values and as dict keys."""
    n = r.choice((10, 31, 32, 33, 1000, 100000, 1000000))
    kind = r.randrange(4)
    body = {
        0: b"N" + b"\x85" * n,  # TUPLE1
        1: b"(" * n + b"N" + b"t" * n,  # MARK ... TUPLE
        2: b"]" + b"(]" * n + b"e" * n,  # lists via APPENDS
        3: b"}" + b"(N}" * n + b"u" * n,  # dicts via SETITEMS
    }[kind]
    if r.random() < 0.5:
        return b"\x80\x02}(" + body + b"Nu."  # as a key
    return b"\x80\x02}(X\x01\x00\x00\x00W" + body + b"u."  # as a value


def gen_sizes(r: random.Random) -> bytes:
    """Length fields and shapes that promise more than the file holds."""
    big = r.choice((2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1, 10**9))
    kind = r.randrange(6)
    if kind == 0:
        return b"\x80\x04\x8e" + (big % 2**64).to_bytes(8, "little") + b"abc."  # BINBYTES8
    if kind == 1:
        return b"\x80\x04X" + (big % 2**32).to_bytes(4, "little") + b"abc."  # BINUNICODE
    if kind == 2:
        return b"\x80\x02\x8b" + (big % 2**31).to_bytes(4, "little") + b"\x01\x02."  # LONG4
    if kind == 3:  # a valid array pickle whose shape is rewritten huge
        data = pickle.dumps({"W": np.zeros(4)}, protocol=r.choice((2, 3, 4)))
        return data.replace(b"K\x04\x85", b"J" + struct.pack("<i", r.choice((2**31 - 1, -4, 0, 5))) + b"\x85")
    if kind == 4:  # one bytes object memoised once and used for many arrays
        return _amplify(b"\0" * 8 * 100000, r.choice((1, 3, 100)))
    return b"\x80\x02" + b"K\x01" * r.choice((10, 10**5)) + b"."  # a long stack left at STOP


def _amplify(raw: bytes, copies: int) -> bytes:
    """A pickle building ``copies`` arrays from one bytes object (pickle refers back to it with BINGET)."""
    multiarray, _ = _core()
    return pickle.dumps({f"W{i}": R(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                    (1, (len(raw) // 8,), np.dtype("f8"), False, raw)) for i in range(copies)},
                        protocol=r_protocol(copies))


def r_protocol(copies: int) -> int:
    return 2 if copies % 2 else 4


def gen_opcodes(r: random.Random) -> bytes:
    """Random programs over the whole opcode table, with plausible arguments."""
    out = bytearray(b"\x80" + bytes([r.randrange(6)]))
    for _ in range(r.randrange(1, 40)):
        op = r.choice(_OPCODES)
        out += op
        if op in (pickle.BININT1, pickle.BINGET, pickle.BINPUT, pickle.PROTO, pickle.EXT1):
            out.append(r.randrange(256))
        elif op in (pickle.BININT2, pickle.EXT2):
            out += r.randrange(65536).to_bytes(2, "little")
        elif op in (pickle.BININT, pickle.LONG_BINGET, pickle.LONG_BINPUT, pickle.EXT4):
            out += r.randrange(2**32).to_bytes(4, "little")
        elif op in (pickle.SHORT_BINUNICODE, pickle.SHORT_BINBYTES, pickle.SHORT_BINSTRING):
            s = r.choice((b"numpy", b"dtype", b"f8", b"W1", b"_reconstruct", b"numpy._core.multiarray", b"\xff"))
            out += bytes([len(s)]) + s
        elif op in (pickle.BINUNICODE, pickle.BINBYTES, pickle.BINSTRING):
            s = bytes(r.randrange(256) for _ in range(r.randrange(9)))
            out += len(s).to_bytes(4, "little") + s
        elif op in (pickle.BINUNICODE8, pickle.BINBYTES8, pickle.BYTEARRAY8, pickle.FRAME):
            out += r.randrange(16).to_bytes(8, "little") + bytes(r.randrange(16))
        elif op in (pickle.LONG1,):
            out += bytes([r.randrange(9)]) + bytes(r.randrange(9))
        elif op == pickle.BINFLOAT:
            out += bytes(r.randrange(256) for _ in range(8))
        elif op in (pickle.GLOBAL, pickle.INST):
            out += r.choice((b"numpy\ndtype\n", b"numpy\nndarray\n", b"os\nsystem\n", b"_codecs\nencode\n",
                             b"collections\nOrderedDict\n", b"builtins\neval\n", b"numpy.core.multiarray\nscalar\n"))
        elif op in (pickle.INT, pickle.LONG, pickle.GET, pickle.PUT, pickle.FLOAT, pickle.UNICODE,
                    pickle.STRING, pickle.PERSID):
            out += r.choice((b"0", b"01", b"-5", b"1e3", b"abc", b"123L", b"'x'", b"9" * 80)) + b"\n"
    out += pickle.STOP
    return bytes(out)


# ======================================================================================================
# structured .npz archives


def npy(descr, shape, fortran=False, data=None, version=1, header=None) -> bytes:
    text = header if header is not None else repr({"descr": descr, "fortran_order": fortran, "shape": shape})
    body = text.encode("latin1") + b"\n"
    version = 2 if version == 1 and len(body) > 65535 else version
    size = struct.pack("<H" if version == 1 else "<I", len(body))
    head = b"\x93NUMPY" + bytes([version, 0]) + size + body
    if data is None:
        try:
            data = bytes(np.zeros(shape, np.dtype(descr)).nbytes)
        except Exception:  # noqa: BLE001 -- descr/shape chosen to be invalid
            data = b""
    return head + data


def zip_bytes(members, method=0, flags=0, sizes=None, crc_ok=True) -> bytes:
    """A zip archive written field by field, so that every directory field can lie."""
    out, central = bytearray(), bytearray()
    for k, (name, data) in enumerate(members):
        name_b = name.encode()
        comp = zlib.compress(data)[2:-4] if method == 8 else data
        crc = zlib.crc32(data) if crc_ok else zlib.crc32(data) ^ 1
        usize = (sizes[k] if sizes else len(data)) & 0xFFFFFFFF
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0, crc, len(comp), usize,
                           len(name_b), 0) + name_b + comp
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0, 0, crc, len(comp),
                               usize, len(name_b), 0, 0, 0, 0, 0, offset) + name_b
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def zip_bomb(header: bytes, zeros: int) -> bytes:
    """A deflated member ``header + zeros`` null bytes: a full flush resets the compressor, so the stream of
    one 16 MiB block of zeros is repeated as is, and a 1 GiB member takes about a megabyte and a second."""
    block = 1 << 24
    assert zeros % block == 0 and len(header) + zeros < 2**32
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    body = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    stream = head + body * (zeros // block) + c.flush()
    crc = zlib.crc32(header)
    chunk = bytes(block)
    for _ in range(zeros // block):
        crc = zlib.crc32(chunk, crc)
    name = b"W.npy"
    size = len(header) + zeros
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(stream), size, len(name), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(stream), size,
                          len(name), 0, 0, 0, 0, 0, 0) + name
    out = local + name + stream
    return out + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(out), 0)


def gen_npz(r: random.Random) -> bytes:
    good = npy("<f4", (2, 3))
    kind = r.randrange(10)
    if kind == 0:  # duplicate member names
        return zip_bytes([("W.npy", good), ("W.npy", npy("<f8", (1,)))])
    if kind == 1:  # a member that is not .npy data
        return zip_bytes([("W.npy", good), (r.choice(("notes.txt", "W.npy", "x/")), b"hello")])
    if kind == 2:  # dtypes that need pickle or are not numeric
        descr = r.choice(["|O", "<U3", "|V8", "|S4", "<M8[s]", [("a", "<f8")], "<f16", "f8", "<q", ">f4", "|b1"])
        return zip_bytes([("W.npy", npy(descr, (2,), data=bytes(16)))])
    if kind == 3:  # shapes and sizes that lie
        shape = r.choice([(2**40,), (-1,), (2**31, 2**31), (3,), (1,) * 40, (1.0,), "x", ()])
        return zip_bytes([("W.npy", npy("<f8", shape, data=bytes(r.choice((0, 8, 24)))))])
    if kind == 4:  # a compression bomb: a small member announcing a huge array
        n = r.choice((2**24, 2**27, 2**28))
        return zip_bytes([("W.npy", npy("<f8", (n,), data=bytes(4096)))], method=8, sizes=[n * 8 + 128])
    if kind == 5:  # headers that are not literal dicts
        header = r.choice([
            "{", "[]", "{'descr': '<f4'}", "(" * 300 + ")" * 300, "x" * 70000,
            "{'descr':'<f4','fortran_order':1,'shape':(2,)}", "__import__('os')",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
        ])
        return zip_bytes([("W.npy", npy("<f4", (2,), header=header, data=bytes(8), version=r.choice((1, 2, 3))))])
    if kind == 6:  # encrypted or unknown compression methods, CRC errors
        return zip_bytes([("W.npy", good)], method=r.choice((0, 8, 12, 14, 99)), flags=r.choice((0, 1, 8)),
                         crc_ok=r.random() < 0.5)
    if kind == 7:  # directory sizes that disagree with the header
        return zip_bytes([("W.npy", good)], sizes=[r.choice((0, 1, len(good) - 1, len(good) + 1, 2**32 - 1))])
    if kind == 8:  # trailing bytes, truncated data, bad magic / version
        data = r.choice([good + b"x", good[:-1], b"\x93NUMPZ" + good[6:], good[:6] + b"\x09\x00" + good[8:]])
        return zip_bytes([("W.npy", data)])
    return zip_bytes([(f"W{i}.npy", npy("<f4", (i,))) for i in range(r.randrange(1, 200))])


GENERATORS = [gen_dtype_state, gen_depth, gen_sizes, gen_opcodes, gen_npz]


def make_input(seed: int, i: int, pool: list) -> bytes:
    """Input ``i`` of run ``seed``: half mutated real files, half from the structured generators."""
    r = random.Random(seed * 10_000_019 + i)
    if r.random() < 0.5:
        return mutate(r, r.choice(pool), pool)
    data = r.choice(GENERATORS)(r)
    return mutate(r, data, pool) if r.random() < 0.25 else data


# ======================================================================================================
# drivers


def run(seed: int, count: int, only=None) -> int:
    pool = seeds()
    stats = collections.Counter()
    failures = 0
    indices = [only] if only is not None else range(count)
    t0 = time.perf_counter()
    for i in indices:
        if i % 1000 == 0:
            print(f"input {i}", flush=True)  # the parent test reads the last one after a crash
        data = make_input(seed, i, pool)
        t = time.perf_counter()
        try:
            stats[check_one(data)] += 1
        except Exception as exc:  # noqa: BLE001 -- every other outcome is a finding
            failures += 1
            print(f"FAIL input {i}: {type(exc).__name__}: {exc}"[:500], flush=True)
        if time.perf_counter() - t > SLOW:
            failures += 1
            print(f"SLOW input {i}: {time.perf_counter() - t:.1f} s", flush=True)
    total = sum(stats.values()) + failures
    print(f"{total} inputs in {time.perf_counter() - t0:.1f} s: {stats['ok']} loaded, {stats['refused']} "
          f"refused, {failures} failures", flush=True)
    return 1 if failures else 0


def replay(paths) -> int:
    files = sorted(f for p in map(Path, paths) for f in ([p] if p.is_file() else p.iterdir()) if f.is_file())
    failures = 0
    for f in files:
        print(f"replay {f.name}", flush=True)
        try:
            check_one(f.read_bytes())
        except Exception as exc:  # noqa: BLE001
            failures += 1
            print(f"FAIL {f}: {type(exc).__name__}: {exc}"[:500], flush=True)
    print(f"{len(files)} corpus files replayed, {failures} failures", flush=True)
    return 1 if failures else 0


def atheris_main(argv) -> None:
    import atheris  # optional: pip install atheris

    # imported here, under instrumentation, so that libFuzzer sees the readers' branches
    with atheris.instrument_imports(include=["fastconv", "zipfile"]):
        from fastconv import _safeload, io as _fio  # noqa: F401

    def one(data: bytes) -> None:
        t = time.perf_counter()
        check_one(data)
        if time.perf_counter() - t > SLOW:
            raise RuntimeError(f"slow input: {time.perf_counter() - t:.1f} s")

    atheris.Setup(argv, one)
    atheris.Fuzz()


def write_seeds(directory) -> None:
    """Write the seed files and one input of each generator into ``directory`` (an atheris corpus)."""
    os.makedirs(directory, exist_ok=True)
    items = seeds() + [g(random.Random(k)) for k in range(20) for g in GENERATORS]
    for data in items:
        name = f"{zlib.crc32(data):08x}"
        Path(directory, name).write_bytes(data)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # libFuzzer re-runs this script for -merge / -fork without --atheris: the environment carries the mode
    if argv[:1] == ["--atheris"] or os.environ.get("FUZZ_IO_ATHERIS"):
        os.environ["FUZZ_IO_ATHERIS"] = "1"
        atheris_main([sys.argv[0]] + [a for a in argv if a != "--atheris"])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--only", type=int, help="run only input ONLY of the seed's sequence")
    p.add_argument("--replay", nargs="+", metavar="PATH", help="check these files / directories instead")
    p.add_argument("--write-seeds", metavar="DIR", help="write a seed corpus for --atheris and exit")
    args = p.parse_args(argv)
    if args.write_seeds:
        write_seeds(args.write_seeds)
        return 0
    if args.replay:
        return replay(args.replay)
    return run(args.seed, args.count, args.only)


if __name__ == "__main__":
    sys.exit(main())
