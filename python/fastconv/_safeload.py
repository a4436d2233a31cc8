"""Readers of parameter files from strangers: the book's ``.pkl`` and NumPy's ``.npz``, run as data only.

Neither reader runs any of pickle's or NumPy's object machinery on the file's bytes:

- :func:`read_pickle` interprets the pickle opcodes itself (protocols 0-5, Python 3). It admits a short list
  of globals (NumPy's array, dtype and scalar constructors, ``OrderedDict``, ``_codecs.encode`` and
  ``bytes`` for protocol 0-2 byte strings) as *names*, never calls them, and builds every array itself with
  ``np.frombuffer`` from a validated plain numeric dtype and a buffer of exactly the right size. Anything
  else -- another global, an object / structured / subarray dtype, a BUILD state it does not know, an
  opcode that would call code or take out-of-band data -- is refused, naming it.
- :func:`read_npz` walks the zip directory, refuses duplicate and non-``.npy`` members, parses every
  member's ``.npy`` header with :func:`ast.literal_eval` (bounded), validates dtype, shape and size (against
  ``max_bytes`` and, when given, the shapes a network expects) for all members *before* inflating any,
  then reads exactly the announced bytes into a preallocated array.

Every refusal is a :class:`ParamFileError` (a ``ValueError``, and a ``pickle.UnpicklingError`` so that code
catching the latter keeps working) whose message starts with the file's name. Resource bounds (the limits
below) keep a crafted file from exhausting memory, time or the C stack.
"""

from __future__ import annotations

import ast
import collections
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

# ======================================================================================================
# limits and errors

MAX_PARAM_BYTES = 1 << 30  # default cap on a file's array data (1 GiB), and on a .pkl file's size
MAX_OPCODES = 1_000_000  # a pickle of 1,000 arrays takes about 30,000
MAX_DEPTH = 32  # nesting of tuples / lists / dicts; a parameter pickle needs 3
MAX_NDIM = 32
MAX_NPY_HEADER = 1 << 16  # bytes of one .npy member's header (NumPy writes 128)


class ParamFileError(pickle.UnpicklingError, ValueError):
    """A parameter file was refused: malformed, outside the admitted subset, or over a limit."""


class ParamMismatchError(ParamFileError):
    """A readable parameter file that does not fit what the caller expects (names, shapes, dtypes)."""


# ======================================================================================================
# plain numeric dtypes: the only ones a parameter file may hold

_ITEMSIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16)}
_DTYPE_STR = re.compile(r"([<>|=]?)([a-zA-Z?])(\d{0,3})")


def plain_dtype(kind: str, size: int, order: str, where: str) -> np.dtype:
    """The dtype ``order + kind + size`` if it is a plain bool / integer / float / complex type."""
    if kind == "O":
        raise ParamFileError(f"{where}: dtype object: object arrays are not admitted")
    if size not in _ITEMSIZES.get(kind, ()):
        raise ParamFileError(
            f"{where}: dtype {kind}{size} is not admitted; parameter files hold bool, integer, float or "
            "complex arrays"
        )
    if order not in (("|", "<", ">", "=") if size == 1 else ("<", ">", "=")):
        raise ParamFileError(f"{where}: byte order {_short(order)} does not fit dtype {kind}{size}")
    return np.dtype(f"{'|' if size == 1 else order}{kind}{size}")


def _dtype_from_str(descr, where: str) -> np.dtype:
    """A ``.npy`` header's ``descr`` (``'<f4'``, ``'|b1'`` ...) checked by :func:`plain_dtype`."""
    m = _DTYPE_STR.fullmatch(descr) if isinstance(descr, str) else None
    if m is None:
        what = "object or structured dtypes are not admitted" if not isinstance(descr, str) else "unknown"
        raise ParamFileError(f"{where}: dtype {descr!r}: {what}")
    order, kind, size = m.groups()
    return plain_dtype(kind, int(size or 0), order or "=", where)


def checked_shape(shape, where: str) -> tuple:
    """A tuple of non-negative Python ints, at most :data:`MAX_NDIM` of them."""
    if type(shape) is not tuple or len(shape) > MAX_NDIM:
        raise ParamFileError(f"{where}: shape {_short(shape)} is not a tuple of at most {MAX_NDIM} sizes")
    for n in shape:
        if type(n) is not int or n < 0:
            raise ParamFileError(f"{where}: shape {_short(shape)} holds {_short(n)}, not a size")
    return shape


def array_nbytes(shape: tuple, dtype: np.dtype, limit: int, where: str, used: int = 0) -> int:
    """Bytes of an array of ``shape`` and ``dtype``, refused when ``used`` plus them exceed ``limit``
    (Python ints: no overflow)."""
    n = dtype.itemsize
    for d in shape:
        n *= d
    if used + n > limit:
        before = f" after {used} bytes of arrays before it" if used else ""
        raise ParamFileError(f"{where}: an array of shape {shape} and dtype {dtype} needs {n} bytes{before}, "
                             f"over the limit of {limit}")
    return n


def new_array(shape: tuple, dtype: np.dtype, fortran: bool, nbytes: int):
    """(bytes, array): a new writable array and a flat uint8 view of its memory, in its memory order."""
    flat = np.empty(nbytes, dtype=np.uint8)
    return flat, flat.view(dtype).reshape(shape, order="F" if fortran else "C")


def _short(value, n: int = 60) -> str:
    """``repr`` cut to ``n`` characters (never recursive past MAX_DEPTH: values here are bounded)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 -- a message helper must not fail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= n else text[: n - 3] + "..."


def _clip(text: str, n: int = 80) -> str:
    """One line of at most ``n`` characters of a name taken from a file."""
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= n else text[: n - 3] + "..."


def check_expected(shapes: Mapping, expected, optional, where: str) -> None:
    """Names and shapes of a file's arrays against what a network expects (nothing read yet for .npz)."""
    if expected is None:
        return
    optional = set(optional)
    missing = sorted(set(expected) - set(shapes) - optional)
    if missing:
        raise ParamMismatchError(f"{where}: missing parameters {missing}")
    unexpected = sorted(set(shapes) - set(expected))
    if unexpected:
        raise ParamMismatchError(f"{where}: unexpected entries {unexpected} (this network has "
                                 f"{sorted(set(expected) - optional)})")
    for key, shape in shapes.items():
        want = tuple(expected[key])
        if tuple(shape) != want:
            raise ParamMismatchError(f"{where}: {key} has shape {tuple(shape)}, expected {want}")


# ======================================================================================================
# pickle: the values the interpreter works with


class _Global:
    """An admitted global, by name only: it is never called, REDUCE looks at its name."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<global {self.name}>"


class _Pending:
    """An array or dtype REDUCE announced; BUILD validates its state and sets ``value``."""

    __slots__ = ("kind", "spec", "value")

    def __init__(self, kind, spec=None):
        self.kind, self.spec, self.value = kind, spec, None

    def __repr__(self):
        return f"<{self.kind} awaiting its state>"


_NUMPY_CORE = ("numpy.core", "numpy._core")  # NumPy 1.x / 2.x module names; either reads the other's
_GLOBALS = {
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("collections", "OrderedDict"): "OrderedDict",
    ("_codecs", "encode"): "encode",
    ("builtins", "bytes"): "bytes",
    ("__builtin__", "bytes"): "bytes",  # protocol 0-2 pickles name builtins the Python 2 way
    **{(f"{core}.multiarray", "_reconstruct"): "_reconstruct" for core in _NUMPY_CORE},
    **{(f"{core}.multiarray", "scalar"): "scalar" for core in _NUMPY_CORE},
    **{(f"{core}.numeric", "_frombuffer"): "_frombuffer" for core in _NUMPY_CORE},
}

# opcodes that would call code, read out-of-band data or build sets; refused by name
_REFUSED = {
    pickle.PERSID: "a persistent id (PERSID): persistent ids are not admitted in parameter pickles",
    pickle.BINPERSID: "a persistent id (BINPERSID): persistent ids are not admitted in parameter pickles",
    pickle.INST: "INST (an instance built by calling a class)",
    pickle.OBJ: "OBJ (an instance built by calling a class)",
    pickle.NEWOBJ: "NEWOBJ (cls.__new__)",
    pickle.NEWOBJ_EX: "NEWOBJ_EX (cls.__new__)",
    pickle.EXT1: "EXT1 (the copyreg extension registry)",
    pickle.EXT2: "EXT2 (the copyreg extension registry)",
    pickle.EXT4: "EXT4 (the copyreg extension registry)",
    pickle.NEXT_BUFFER: "NEXT_BUFFER (out-of-band data)",
    pickle.READONLY_BUFFER: "READONLY_BUFFER (out-of-band data)",
    pickle.EMPTY_SET: "EMPTY_SET (sets)",
    pickle.ADDITEMS: "ADDITEMS (sets)",
    pickle.FROZENSET: "FROZENSET (sets)",
    pickle.STRING: "STRING (a Python 2 str; re-save the file under Python 3)",
    pickle.BINSTRING: "BINSTRING (a Python 2 str; re-save the file under Python 3)",
    pickle.SHORT_BINSTRING: "SHORT_BINSTRING (a Python 2 str; re-save the file under Python 3)",
}

_KEY_ATOMS = (str, bytes, int, float, bool, type(None))


def _is_key(value) -> bool:
    """Hashable without running code: atoms and tuples of them (depth bounded by MAX_DEPTH)."""
    return type(value) in _KEY_ATOMS or (type(value) is tuple and all(_is_key(v) for v in value))


# ======================================================================================================
# pickle: the interpreter


class _PickleReader:
    """One pass over a pickle's bytes with a stack machine of its own (see the module docstring)."""

    def __init__(self, data: bytes, where: str, max_bytes: int):
        self.data, self.where, self.pos = data, where, 0
        # bytes the interpreter may build (arrays, encoded strings): a legitimate file builds each array
        # once from bytes it holds, so twice its size bounds it; memo references cannot multiply it
        self.budget = 2 * len(data) + (1 << 16)
        self.max_bytes = max_bytes
        self.stack: list = []
        self.marks: list = []
        self.memo: dict = {}
        self.depth: dict = {}  # id(container) -> nesting depth; containers kept alive by self.keep
        self.keep: list = []
        self.frozen: set = set()  # ids of mutable containers already inside another one
        self.op = b""
        self.op_pos = 0

    # ---- errors and raw reads ----------------------------------------------------------------------

    def fail(self, message: str):
        name = _OPNAMES.get(self.op, repr(self.op))
        raise ParamFileError(f"{self.where}: {message} (opcode {name} at byte {self.op_pos})")

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"truncated pickle: {n} bytes announced, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def readline(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            self.fail("truncated pickle: a text argument has no end of line")
        line = self.data[self.pos:end]
        self.pos = end + 1
        return line

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def text_int(self, line: bytes) -> int:
        try:
            if len(line) > 64:
                raise ValueError
            return int(line.decode("ascii"), 10)
        except ValueError:
            self.fail(f"bad integer {_short(line)}")

    def spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            self.fail("the pickle builds more data than it holds (a reference reused to multiply memory?)")

    # ---- the stack ---------------------------------------------------------------------------------

    def push(self, value) -> None:
        self.stack.append(value)

    def pop(self):
        if not self.stack:
            self.fail("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.marks:
            self.fail("no MARK to pop to")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def value(self, x, container: bool = True):
        """``x`` as it may be used: a built array / dtype, never a bare global or an unbuilt object."""
        if type(x) is _Pending:
            if x.value is None:
                self.fail(f"{x.kind} used before BUILD gave it its state")
            return x.value
        if type(x) is _Global and container:
            self.fail(f"global {x.name} used as a value; globals may only be called")
        return x

    def child_depth(self, x) -> int:
        if id(x) in self.depth:
            self.frozen.add(id(x))
            return self.depth[id(x)]
        return 0

    def container(self, obj, items) -> object:
        """Record a new container's depth (1 + its deepest item); refuse one past MAX_DEPTH."""
        d = 1 + max((self.child_depth(v) for v in items), default=0)
        if d > MAX_DEPTH:
            self.fail(f"containers nested deeper than {MAX_DEPTH}")
        self.depth[id(obj)] = d
        self.keep.append(obj)
        return obj

    def grow(self, obj, items) -> None:
        """Items added to an existing list / dict: its depth grows; it must not sit inside another yet."""
        if id(obj) in self.frozen:
            self.fail("a list or dict changed after it was put inside another container")
        for v in items:
            if v is obj:
                self.fail("a container put inside itself")
            d = 1 + self.child_depth(v)
            if d > MAX_DEPTH:
                self.fail(f"containers nested deeper than {MAX_DEPTH}")
            self.depth[id(obj)] = max(self.depth[id(obj)], d)

    def tuple_of(self, items) -> tuple:
        items = tuple(self.value(v, container=False) for v in items)
        return self.container(items, items)

    def set_items(self, target, flat: list) -> None:
        if type(target) not in (dict, collections.OrderedDict):
            self.fail(f"SETITEM(S) on a {type(target).__name__}, not a dict")
        if len(flat) % 2:
            self.fail("SETITEMS with an odd number of items")
        pairs = [(self.value(flat[i]), self.value(flat[i + 1])) for i in range(0, len(flat), 2)]
        self.grow(target, [v for kv in pairs for v in kv])
        for k, v in pairs:
            if not _is_key(k):
                self.fail(f"dict key of type {type(k).__name__} is not admitted")
            target[k] = v

    def append_items(self, target, items: list) -> None:
        if type(target) is not list:
            self.fail(f"APPEND(S) on a {type(target).__name__}, not a list")
        items = [self.value(v) for v in items]
        self.grow(target, items)
        target.extend(items)

    # ---- globals, REDUCE and BUILD -----------------------------------------------------------------

    def find_global(self, module, name) -> _Global:
        if type(module) is not str or type(name) is not str:
            self.fail("STACK_GLOBAL needs two str names")
        try:
            return _Global(_GLOBALS[(module, name)])
        except KeyError:
            # the exact wording is relied on by users' error handling and the tests
            self.fail(f"refused global {_clip(module)}.{_clip(name)}: parameter pickles may only contain "
                      "NumPy arrays, dtypes, scalars and dicts")

    def reduce(self, func, args):
        if type(func) is not _Global:
            self.fail(f"REDUCE of a {type(func).__name__}; only admitted globals may be called")
        if type(args) is not tuple:
            self.fail("REDUCE arguments are not a tuple")
        name = func.name
        if name == "dtype":
            # (spec, align, copy); NumPy 1.x wrote the two flags as ints 0 / 1
            if not (len(args) == 3 and type(args[0]) is str
                    and all(type(a) in (bool, int) and a in (0, 1) for a in args[1:])):
                self.fail(f"dtype arguments {_short(args)} are not (str, bool, bool)")
            m = re.fullmatch(r"([a-zA-Z])(\d{1,3})", args[0])
            if m is None:
                self.fail(f"dtype {args[0]!r} is not admitted (object / structured / flexible dtypes)")
            # checks kind and size now; byte order comes with BUILD
            plain_dtype(m.group(1), int(m.group(2)), "|" if m.group(2) == "1" else "<", self.where)
            return _Pending("dtype", (m.group(1), int(m.group(2))))
        if name == "_reconstruct":
            if not (len(args) == 3 and type(args[0]) is _Global and args[0].name == "ndarray"
                    and args[1] == (0,) and args[2] in (b"b", "b")):
                self.fail(f"_reconstruct arguments {_short(args)} are not (ndarray, (0,), b'b')")
            return _Pending("array")
        if name == "scalar":
            if len(args) != 2 or not isinstance(args[0], np.dtype) or type(args[1]) is not bytes:
                self.fail("scalar arguments are not (dtype, bytes)")
            dtype, raw = args
            if len(raw) != dtype.itemsize:
                self.fail(f"scalar of dtype {dtype} with {len(raw)} bytes")
            self.spend(len(raw))
            return np.frombuffer(raw, dtype=dtype)[0]
        if name == "_frombuffer":
            if len(args) != 4 or type(args[0]) not in (bytes, bytearray) or not isinstance(args[1], np.dtype) \
                    or args[3] not in ("C", "F"):
                self.fail("_frombuffer arguments are not (buffer, dtype, shape, 'C' or 'F')")
            return self.array(args[2], args[1], args[3] == "F", args[0])
        if name == "OrderedDict":
            if args:
                self.fail("OrderedDict called with arguments")
            return self.container(collections.OrderedDict(), ())
        if name == "encode":
            if len(args) not in (1, 2) or type(args[0]) is not str or \
                    (len(args) == 2 and args[1] not in ("latin1", "latin-1")):
                self.fail(f"refused _codecs.encode{_short(args)}: only latin1 text is admitted")
            self.spend(len(args[0]))
            try:
                return args[0].encode("latin1")
            except UnicodeEncodeError:
                self.fail("_codecs.encode of text outside latin-1")
        if name == "bytes":
            if args:
                self.fail("bytes() called with arguments")
            return b""
        self.fail(f"global {name} called; it may only be an argument")  # ndarray

    def array(self, shape, dtype, fortran: bool, raw) -> np.ndarray:
        where = f"{self.where}: array"
        shape = checked_shape(shape, where)
        n = array_nbytes(shape, dtype, self.max_bytes, where)
        if len(raw) != n:
            self.fail(f"array of shape {shape} and dtype {dtype} needs {n} bytes, the pickle gives {len(raw)}")
        self.spend(n)
        flat, out = new_array(shape, dtype, fortran, n)
        flat[:] = np.frombuffer(raw, dtype=np.uint8)
        return out

    def build(self, obj, state) -> None:
        if type(obj) is not _Pending or obj.value is not None:
            self.fail(f"BUILD on a {type(obj).__name__}; only arrays and dtypes take a state")
        if type(state) is not tuple:
            self.fail(f"{obj.kind} state is not a tuple")
        if obj.kind == "dtype":
            kind, size = obj.spec
            version = state[0] if state else None
            ok = (version == 3 and len(state) == 8) or (version == 4 and len(state) == 9 and state[8] is None)
            if not ok or state[2:5] != (None, None, None) or state[7] != 0 or type(state[1]) is not str \
                    or state[5] not in (-1, size) or type(state[6]) is not int:
                self.fail(f"dtype state {_short(state, 120)} is not a plain numeric dtype's "
                          "(sub-arrays, fields, object flags are not admitted)")
            obj.value = plain_dtype(kind, size, state[1], self.where)
            return
        if not (len(state) == 5 and state[0] == 1 and isinstance(state[2], np.dtype) and type(state[3]) is bool
                and type(state[4]) in (bytes, bytearray)):
            self.fail(f"array state {_short(state)} is not (1, shape, dtype, bool, bytes)")
        obj.value = self.array(state[1], state[2], state[3], state[4])

    # ---- the loop ----------------------------------------------------------------------------------

    def run(self):
        data, handlers = self.data, _HANDLERS
        for _ in range(MAX_OPCODES):
            if self.pos >= len(data):
                self.op, self.op_pos = b"", self.pos
                self.fail("truncated pickle: no STOP opcode")
            self.op_pos = self.pos
            self.op = data[self.pos:self.pos + 1]
            self.pos += 1
            if self.op == pickle.STOP:
                result = self.value(self.pop())
                if self.stack or self.marks:
                    self.fail("values left on the stack at STOP")
                return result
            handler = handlers.get(self.op)
            if handler is None:
                refused = _REFUSED.get(self.op)
                self.fail(f"refused {refused}" if refused else f"unknown opcode {self.op!r}")
            handler(self)
        self.fail(f"more than {MAX_OPCODES} opcodes")


def _h(*ops):
    """Register a handler for the given opcodes."""
    def deco(fn):
        for op in ops:
            _HANDLERS[op] = fn
        return fn
    return deco


_HANDLERS: dict = {}
_OPNAMES = {getattr(pickle, n): n for n in dir(pickle) if n.isupper() and isinstance(getattr(pickle, n), bytes)
            and len(getattr(pickle, n)) == 1}


@_h(pickle.PROTO)
def _proto(r: _PickleReader):
    if r.read(1)[0] > 5:
        r.fail("pickle protocol above 5")


@_h(pickle.FRAME)
def _frame(r: _PickleReader):
    if r.unpack("<Q") > len(r.data) - r.pos:
        r.fail("frame longer than the file")


@_h(pickle.MARK)
def _mark(r: _PickleReader):
    r.marks.append(r.stack)
    r.stack = []
    if len(r.marks) > 4 * MAX_DEPTH:
        r.fail("too many open MARKs")


@_h(pickle.POP)
def _pop(r: _PickleReader):
    r.pop()


@_h(pickle.POP_MARK)
def _pop_mark(r: _PickleReader):
    r.pop_mark()


@_h(pickle.DUP)
def _dup(r: _PickleReader):
    r.push(r.stack[-1] if r.stack else r.pop())


@_h(pickle.NONE)
def _none(r: _PickleReader):
    r.push(None)


@_h(pickle.NEWTRUE, pickle.NEWFALSE)
def _bool(r: _PickleReader):
    r.push(r.op == pickle.NEWTRUE)


@_h(pickle.INT)
def _int(r: _PickleReader):
    line = r.readline()
    r.push({b"00": False, b"01": True}[line] if line in (b"00", b"01") else r.text_int(line))


@_h(pickle.LONG)
def _long(r: _PickleReader):
    line = r.readline()
    r.push(r.text_int(line[:-1] if line.endswith(b"L") else line))


@_h(pickle.BININT)
def _binint(r: _PickleReader):
    r.push(r.unpack("<i"))


@_h(pickle.BININT1)
def _binint1(r: _PickleReader):
    r.push(r.read(1)[0])


@_h(pickle.BININT2)
def _binint2(r: _PickleReader):
    r.push(r.unpack("<H"))


@_h(pickle.LONG1, pickle.LONG4)
def _long_bin(r: _PickleReader):
    n = r.read(1)[0] if r.op == pickle.LONG1 else r.unpack("<i")
    if n > 64:
        r.fail(f"integer of {n} bytes")
    r.push(int.from_bytes(r.read(n), "little", signed=True))


@_h(pickle.FLOAT)
def _float(r: _PickleReader):
    line = r.readline()
    try:
        if len(line) > 64:
            raise ValueError
        r.push(float(line.decode("ascii")))
    except ValueError:
        r.fail(f"bad float {_short(line)}")


@_h(pickle.BINFLOAT)
def _binfloat(r: _PickleReader):
    r.push(r.unpack(">d"))


def _text(r: _PickleReader, raw: bytes, codec: str):
    try:
        r.push(raw.decode(codec))
    except UnicodeDecodeError:
        r.fail(f"text that is not {codec}")


@_h(pickle.UNICODE)
def _unicode(r: _PickleReader):
    _text(r, r.readline(), "raw-unicode-escape")


@_h(pickle.SHORT_BINUNICODE)
def _short_binunicode(r: _PickleReader):
    _text(r, r.read(r.read(1)[0]), "utf-8")


@_h(pickle.BINUNICODE)
def _binunicode(r: _PickleReader):
    _text(r, r.read(r.unpack("<I")), "utf-8")


@_h(pickle.BINUNICODE8)
def _binunicode8(r: _PickleReader):
    _text(r, r.read(r.unpack("<Q")), "utf-8")


@_h(pickle.SHORT_BINBYTES)
def _short_binbytes(r: _PickleReader):
    r.push(r.read(r.read(1)[0]))


@_h(pickle.BINBYTES)
def _binbytes(r: _PickleReader):
    r.push(r.read(r.unpack("<I")))


@_h(pickle.BINBYTES8)
def _binbytes8(r: _PickleReader):
    r.push(r.read(r.unpack("<Q")))


@_h(pickle.BYTEARRAY8)
def _bytearray8(r: _PickleReader):
    r.push(bytearray(r.read(r.unpack("<Q"))))


@_h(pickle.EMPTY_TUPLE)
def _empty_tuple(r: _PickleReader):
    r.push(())


@_h(pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3)
def _tuple_n(r: _PickleReader):
    n = {pickle.TUPLE1: 1, pickle.TUPLE2: 2, pickle.TUPLE3: 3}[r.op]
    if len(r.stack) < n:
        r.fail("stack underflow")
    items = r.stack[-n:]
    del r.stack[-n:]
    r.push(r.tuple_of(items))


@_h(pickle.TUPLE)
def _tuple(r: _PickleReader):
    r.push(r.tuple_of(r.pop_mark()))


@_h(pickle.EMPTY_LIST)
def _empty_list(r: _PickleReader):
    r.push(r.container([], ()))


@_h(pickle.LIST)
def _list(r: _PickleReader):
    items = [r.value(v) for v in r.pop_mark()]
    r.push(r.container(items, items))


@_h(pickle.EMPTY_DICT)
def _empty_dict(r: _PickleReader):
    r.push(r.container({}, ()))


@_h(pickle.DICT)
def _dict(r: _PickleReader):
    flat = r.pop_mark()
    d = r.container({}, ())
    r.set_items(d, flat)
    r.push(d)


@_h(pickle.APPEND)
def _append(r: _PickleReader):
    item = r.pop()
    r.append_items(r.stack[-1] if r.stack else r.pop(), [item])


@_h(pickle.APPENDS)
def _appends(r: _PickleReader):
    items = r.pop_mark()
    r.append_items(r.stack[-1] if r.stack else r.pop(), items)


@_h(pickle.SETITEM)
def _setitem(r: _PickleReader):
    v = r.pop()
    k = r.pop()
    r.set_items(r.stack[-1] if r.stack else r.pop(), [k, v])


@_h(pickle.SETITEMS)
def _setitems(r: _PickleReader):
    flat = r.pop_mark()
    r.set_items(r.stack[-1] if r.stack else r.pop(), flat)


def _memo_index(r: _PickleReader) -> int:
    """The memo index after a PUT / GET opcode: text, one byte or four bytes; MEMOIZE takes the next one."""
    if r.op in (pickle.PUT, pickle.GET):
        return r.text_int(r.readline())
    if r.op in (pickle.BINPUT, pickle.BINGET):
        return r.read(1)[0]
    if r.op in (pickle.LONG_BINPUT, pickle.LONG_BINGET):
        return r.unpack("<I")
    return len(r.memo)


@_h(pickle.PUT, pickle.BINPUT, pickle.LONG_BINPUT, pickle.MEMOIZE)
def _memo_put(r: _PickleReader):
    index = _memo_index(r)
    if not r.stack:
        r.fail("memo store from an empty stack")
    r.memo[index] = r.stack[-1]


@_h(pickle.GET, pickle.BINGET, pickle.LONG_BINGET)
def _memo_get(r: _PickleReader):
    index = _memo_index(r)
    try:
        r.push(r.memo[index])
    except KeyError:
        r.fail(f"memo entry {index} was never stored")


@_h(pickle.GLOBAL)
def _global(r: _PickleReader):
    module = r.readline()
    name = r.readline()
    try:
        r.push(r.find_global(module.decode("utf-8"), name.decode("utf-8")))
    except UnicodeDecodeError:
        r.fail("global name that is not UTF-8")


@_h(pickle.STACK_GLOBAL)
def _stack_global(r: _PickleReader):
    name = r.pop()
    module = r.pop()
    r.push(r.find_global(module, name))


@_h(pickle.REDUCE)
def _reduce(r: _PickleReader):
    args = r.pop()
    func = r.pop()
    r.push(r.reduce(func, args))


@_h(pickle.BUILD)
def _build(r: _PickleReader):
    state = r.pop()
    if not r.stack:
        r.fail("stack underflow")
    r.build(r.stack[-1], state)


def read_pickle(data: bytes, where: str, max_bytes: int = MAX_PARAM_BYTES):
    """Interpret a pickle's bytes as data (see the module docstring); the object it describes.

    Raises :class:`ParamFileError` naming ``where``, the problem, the opcode and its byte offset.
    """
    return _PickleReader(bytes(data), where, max_bytes).run()


# ======================================================================================================
# .npz: zip members holding .npy arrays, checked before anything is inflated

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"  # what every .npz starts with


def _npy_header(fp, where: str):
    """(dtype, shape, fortran, header bytes) from a .npy stream positioned at its start."""
    magic = fp.read(8)
    if len(magic) != 8 or magic[:6] != _NPY_MAGIC:
        raise ParamFileError(f"{where}: not .npy data (no \\x93NUMPY magic)")
    major = magic[6]
    if major not in (1, 2, 3):
        raise ParamFileError(f"{where}: .npy format version {major}.{magic[7]} is not supported")
    size_fmt = "<H" if major == 1 else "<I"
    raw = fp.read(struct.calcsize(size_fmt))
    if len(raw) != struct.calcsize(size_fmt):
        raise ParamFileError(f"{where}: truncated .npy header")
    n = struct.unpack(size_fmt, raw)[0]
    if n > MAX_NPY_HEADER:
        raise ParamFileError(f"{where}: .npy header of {n} bytes (limit {MAX_NPY_HEADER})")
    text = fp.read(n)
    if len(text) != n:
        raise ParamFileError(f"{where}: truncated .npy header")
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise ParamFileError(f"{where}: unreadable .npy header ({type(exc).__name__})") from None
    if type(header) is not dict or set(header) != {"descr", "fortran_order", "shape"}:
        raise ParamFileError(f"{where}: .npy header {_short(header)} is not a dict of descr, fortran_order, "
                             "shape")
    if type(header["fortran_order"]) is not bool:
        raise ParamFileError(f"{where}: fortran_order {_short(header['fortran_order'])} is not a bool")
    dtype = _dtype_from_str(header["descr"], where)
    return dtype, checked_shape(header["shape"], where), header["fortran_order"], len(magic) + len(raw) + n


def read_npz(source, expected=None, optional=(), max_bytes: int = MAX_PARAM_BYTES, where=None) -> dict:
    """Arrays of an ``.npz`` archive (a path or a seekable binary file), every member's header checked
    before any member is inflated; refusals are :class:`ParamFileError` naming ``where`` (default: the path).
    """
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        with open(source, "rb") as f:
            return read_npz(f, expected, optional, max_bytes, where or str(source))
    where = where or str(getattr(source, "name", "npz"))
    head = source.read(16)
    if head[:len(_NPY_MAGIC)] == _NPY_MAGIC:
        raise ParamFileError(f"{where}: not an .npz archive (found a single .npy array)")
    if not head:
        raise ParamFileError(f"{where}: empty file (0 bytes), not an .npz archive")
    if not head.startswith(_ZIP_MAGIC):
        # say what it is not, and what it starts with: text, a pickle, anything (it is never unpickled)
        like = ""
        if head[:1] == b"\x80":
            like = " (it starts like a pickle, which is read only from a .pkl name)"
        raise ParamFileError(f"{where}: not an .npz archive{like}: an .npz starts with the zip signature "
                             f"{_ZIP_MAGIC!r}, this file with {head!r}")
    source.seek(0)
    try:
        return _read_zip(source, where, expected, optional, max_bytes)
    except ParamFileError:
        raise
    except zipfile.BadZipFile as exc:  # the start of a zip archive: cut short, or damaged (e.g. a bad CRC)
        reason = str(exc)
        if reason == "File is not a zip file":  # zipfile's words for a missing end-of-archive directory
            reason = "the zip directory at its end is missing"
        raise ParamFileError(f"{where}: truncated or damaged .npz archive ({reason})") from None
    except (zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError, struct.error, UnicodeDecodeError, OverflowError, ValueError, OSError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unsupported compression method
        raise ParamFileError(f"{where}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None


def _read_zip(f, path, expected, optional, max_bytes) -> dict:
    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        dup = sorted(n for n, c in collections.Counter(i.filename for i in infos).items() if c > 1)
        if dup:
            raise ParamFileError(f"{path}: duplicate members {dup}; refusing to guess which one is meant")
        plan, total = {}, 0
        for info in infos:
            where = f"{path}: member {info.filename!r}"
            if not info.filename.endswith(".npy") or info.is_dir():
                raise ParamFileError(f"{where} is not an .npy array")
            with zf.open(info) as fp:
                dtype, shape, fortran, head = _npy_header(fp, where)
            nbytes = array_nbytes(shape, dtype, max_bytes, where, total)
            total += nbytes
            if info.file_size != head + nbytes:
                raise ParamFileError(f"{where}: the zip directory says {info.file_size} bytes, the .npy "
                                     f"header {head + nbytes}")
            plan[info.filename[:-4]] = (info, dtype, shape, fortran, head, nbytes)
        check_expected({k: p[2] for k, p in plan.items()}, expected, optional, path)
        return {key: _read_member(zf, *p, where=f"{path}: member {p[0].filename!r}")
                for key, p in plan.items()}


def _read_member(zf, info, dtype, shape, fortran, head, nbytes, where):
    """Exactly ``nbytes`` after the header into a new array; zipfile checks the CRC at the member's end."""
    flat, out = new_array(shape, dtype, fortran, nbytes)
    with zf.open(info) as fp:
        fp.read(head)
        done = 0
        while done < nbytes:
            chunk = fp.read(min(nbytes - done, 1 << 24))
            if not chunk:
                raise ParamFileError(f"{where}: truncated array data ({done} of {nbytes} bytes)")
            flat[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
        if fp.read(1):
            raise ParamFileError(f"{where}: bytes after the array data")
    return out
