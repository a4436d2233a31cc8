"""Text data for the sequence models: Debian's fortune files and two generated seq2seq tasks.

The loaders are re-exported by :mod:`fastconv.datasets`, which documents them:

- :func:`load_fortunes_zh`: the Chinese fortunes (``fortunes-zh``: Tang poems, Song poems, other texts) as a
  character corpus, returned as the sequel's ``ptb.load_data`` returns PTB (corpus, char_to_id, id_to_char).
- :func:`load_fortunes`: the English fortunes (``fortunes``) by category, tokenised into words and padded or
  truncated to a fixed length, for a category classifier.
- :func:`load_addition`, :func:`load_date`: the sequel's ch07 addition task and a ch08-style date-format task,
  generated from a seed, returned as the sequel's ``sequence.load_data`` returns them.

The fortune files are read as untrusted input: a file larger than :data:`MAX_FORTUNE_BYTES`, one that is not
UTF-8, or a category name that is not a plain file name is refused with a one-line ``ValueError``.
"""

from __future__ import annotations

import datetime
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

# ======================================================================================================
# fortune files

# Debian's fortunes and fortunes-zh install their files here (tests point this elsewhere).
FORTUNE_ROOT = Path("/usr/share/games/fortunes")
MAX_FORTUNE_BYTES = 16 << 20  # the largest file (fortunes-zh's "chinese") is 2.1 MB
ZH_PARTS = ("tang300", "song100", "chinese")
EN_CATEGORIES = ("computers", "science", "politics", "songs-poems")

# The fixed split of every fortune file: entries are numbered from 0 in file order; entry k is a test entry
# when k % 10 == 9, a validation entry when k % 10 == 8, a training entry otherwise (80 / 10 / 10).
_SPLIT_OF_REMAINDER = {8: "val", 9: "test"}
_DATA_TYPES = ("train", "val", "test")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes (fortunes-zh prints titles in colour)
_OVERSTRIKE = re.compile(r".\x08")  # "X\bX" bold / "_\bX" underline of old terminals (English fortunes)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
EOS = "<eos>"


def _fortune_dir(path):
    if path is None:
        return FORTUNE_ROOT
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a directory as str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _check_name(name, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a str naming a fortune file, got {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what}: expected a plain file name (lower-case letters, digits, '-', '_'), got {name!r}")
    return name


def read_fortunes(file) -> list:
    """The entries of one fortune file (text between lines holding only ``%``), cleaned.

    Colour escape sequences and overstrike (``X\\bX``) are removed, lines are right-stripped, and empty
    entries are dropped.

    Parameters
    ----------
    file : str or os.PathLike
        A fortune file in UTF-8 (the ``.dat`` index beside it is not needed).

    Returns
    -------
    list of str
        The entries in file order.

    Raises
    ------
    ValueError
        The file is larger than ``MAX_FORTUNE_BYTES`` or not valid UTF-8.
    """
    name = os.fspath(file)
    with open(name, "rb") as f:
        raw = f.read(MAX_FORTUNE_BYTES + 1)
    if len(raw) > MAX_FORTUNE_BYTES:
        raise ValueError(f"{name}: larger than the limit of {MAX_FORTUNE_BYTES} bytes for a fortune file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    text = _OVERSTRIKE.sub("", _ANSI.sub("", text))
    entries, lines = [], []
    for line in text.splitlines():
        line = line.rstrip()
        if line == "%":
            entries.append("\n".join(lines).strip("\n"))
            lines = []
        else:
            lines.append(line)
    entries.append("\n".join(lines).strip("\n"))
    return [e for e in entries if e]


def _split_of(k: int) -> str:
    return _SPLIT_OF_REMAINDER.get(k % 10, "train")


def _read_parts(names, path, package: str) -> dict:
    """{name: entries} for the fortune files ``names`` in ``path``; a missing file says what to install."""
    directory = _fortune_dir(path)
    out = {}
    for name in names:
        file = directory / name
        if not file.is_file():
            from .datasets import (
                DataNotFoundError,  # the loaders' shared error (datasets imports this module)
            )

            how = f"install Debian's package (apt-get install {package})"
            raise DataNotFoundError(
                f"{package}: the fortune file {file} was not found; to get it: {how}, or pass path=<dir>",
                package,
                [f"{file}: no such file"],
                how,
            )
        out[name] = read_fortunes(file)
    return out


def _check_data_type(data_type) -> str:
    if data_type not in _DATA_TYPES:
        raise ValueError(f"data_type: expected one of {_DATA_TYPES}, got {data_type!r}")
    return data_type


def _check_names(names, what: str, default_pool) -> tuple:
    if isinstance(names, str):
        names = (names,)
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"{what}: expected a sequence of file names, got {type(names).__name__}") from None
    if not names:
        raise ValueError(f"{what}: expected at least one name (e.g. {default_pool[0]!r}), got none")
    for n in names:
        _check_name(n, what)
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: names repeat in {names!r}")
    return names


# ======================================================================================================
# fortunes-zh: a character corpus


def load_fortunes_zh(data_type="train", parts=ZH_PARTS, *, path=None):
    """The Chinese fortunes as a character corpus, returned as the sequel's ``ptb.load_data`` returns PTB.

    Each entry of the chosen files (a poem with its title and author lines, or a text) becomes its characters,
    newlines included, followed by the token ``"<eos>"``; entries follow each other file by file.

    Parameters
    ----------
    data_type : {"train", "val", "test"}
        The split. It is fixed: in each file, entry k (from 0, in file order) is a test entry when
        k % 10 == 9, a validation entry when k % 10 == 8 and a training entry otherwise.
    parts : sequence of str, default ("tang300", "song100", "chinese")
        Which files of Debian's ``fortunes-zh``: ``tang300`` (313 Tang poems), ``song100`` (95 Song poems),
        ``chinese`` (about 5,000 texts).
    path : str or os.PathLike, optional
        The directory of the files (default ``/usr/share/games/fortunes``).

    Returns
    -------
    corpus : ndarray of int32, shape (L,)
        The split's character ids.
    char_to_id : dict of str -> int
    id_to_char : dict of int -> str
        The vocabulary of the chosen files, all splits (so that a test character has an id), numbered in
        order of first appearance; it is the same for every ``data_type``.

    Raises
    ------
    DataNotFoundError
        A file is missing (the message says: ``apt-get install fortunes-zh``).
    ValueError
        Bad ``data_type`` or ``parts``, or a file too large or not UTF-8.
    """
    data_type = _check_data_type(data_type)
    parts = _check_names(parts, "parts", ZH_PARTS)
    entries = _read_parts(parts, path, "fortunes-zh")
    char_to_id, id_to_char = {}, {}
    ids = []
    for name in parts:
        for k, entry in enumerate(entries[name]):
            tokens = [*entry, EOS]
            for tok in tokens:
                if tok not in char_to_id:
                    char_to_id[tok] = len(char_to_id)
                    id_to_char[char_to_id[tok]] = tok
            if _split_of(k) == data_type:
                ids.extend(char_to_id[tok] for tok in tokens)
    return np.array(ids, dtype=np.int32), char_to_id, id_to_char


# ======================================================================================================
# fortunes: word sequences by category


def tokenize(text: str) -> list:
    """Lower-cased words: runs of ASCII letters and digits, with an apostrophe suffix kept (``don't``)."""
    return _WORD.findall(text.lower())


def _check_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value}")
    return int(value)


def load_fortunes(categories=EN_CATEGORIES, *, num_words=10000, maxlen=50, path=None):
    """English fortunes by category, as padded word-id sequences for a classifier.

    Parameters
    ----------
    categories : sequence of str, default ("computers", "science", "politics", "songs-poems")
        Fortune files of Debian's ``fortunes`` package; the label of an entry is the index of its file here.
    num_words : int, default 10000
        Vocabulary cap, Keras' convention: ids are below ``num_words``. Id 0 pads, id 1 stands for a word
        outside the vocabulary, ids 2.. are the training split's words by decreasing count (ties in
        alphabetical order).
    maxlen : int, default 50
        Sequence length. Shorter entries are padded with 0 at the front; longer ones keep their first
        ``maxlen`` words. (Keras' ``pad_sequences`` pads at the front too, but by default keeps the last words.)
    path : str or os.PathLike, optional
        The directory of the files (default ``/usr/share/games/fortunes``).

    Returns
    -------
    (x_train, t_train), (x_val, t_val), (x_test, t_test), word_to_id
        ``x_*`` int32 of shape (N, maxlen), ``t_*`` int64 labels of shape (N,). The split is fixed: in each
        file, entry k (from 0, in file order) is a test entry when k % 10 == 9, a validation entry when
        k % 10 == 8, a training entry otherwise. Words are :func:`tokenize`'s.

    Raises
    ------
    DataNotFoundError
        A file is missing (the message says: ``apt-get install fortunes``).
    ValueError, TypeError
        Bad arguments, or a file too large or not UTF-8.
    """
    categories = _check_names(categories, "categories", EN_CATEGORIES)
    num_words = _check_int(num_words, "num_words", 3, 1 << 24)
    maxlen = _check_int(maxlen, "maxlen", 1, 1 << 16)
    entries = _read_parts(categories, path, "fortunes")
    docs = {s: [] for s in _DATA_TYPES}
    for label, name in enumerate(categories):
        for k, entry in enumerate(entries[name]):
            docs[_split_of(k)].append((tokenize(entry), label))
    counts = Counter(w for words, _ in docs["train"] for w in words)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: num_words - 2]
    word_to_id = {w: i + 2 for i, (w, _) in enumerate(ranked)}
    out = []
    for split in _DATA_TYPES:
        x = np.zeros((len(docs[split]), maxlen), dtype=np.int32)
        t = np.empty(len(docs[split]), dtype=np.int64)
        for row, (words, label) in enumerate(docs[split]):
            ids = [word_to_id.get(w, 1) for w in words[:maxlen]]
            if ids:
                x[row, maxlen - len(ids) :] = ids
            t[row] = label
        out.append((x, t))
    return (*out, word_to_id)


# ======================================================================================================
# generated seq2seq tasks (the sequel's dataset/sequence.py format)

_ADDITION_CHARS = "0123456789+ _"
_DATE_QUESTION_WIDTH = 29
_MAX_EXAMPLES = 1_000_000
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE_FIRST = datetime.date(1970, 1, 1).toordinal()
_DATE_LAST = datetime.date(2029, 12, 31).toordinal()


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed: expected an int >= 0, got {seed!r}")
    return int(seed)


def addition_lines(n=50000, *, seed=1984, digits=3) -> list:
    """Lines of the sequel's ``addition.txt``: ``"16+75  _91  "``, each sum asked once.

    Each operand has a number of digits drawn uniformly from 1..``digits``, then a value uniformly among the
    numbers with that many digits (so short operands are as common as long ones, as in the sequel's file).
    The question is left-justified to ``2 * digits + 1`` characters, the answer is ``"_"`` and the sum,
    left-justified to ``digits + 2``.

    Parameters
    ----------
    n : int
        Number of lines (distinct questions), 1 .. 1,000,000 and at most half the possible questions.
    seed : int
        Seed of ``numpy.random.default_rng``: the same seed gives the same lines.
    digits : int
        Largest operand length, 1..5.

    Returns
    -------
    list of str
        The lines, without newline characters.
    """
    digits = _check_int(digits, "digits", 1, 5)
    possible = (10**digits) ** 2
    n = _check_int(n, "n", 1, min(_MAX_EXAMPLES, possible // 2))
    rng = np.random.default_rng(_check_seed(seed))
    seen, lines = set(), []
    qw, aw = 2 * digits + 1, digits + 2
    while len(lines) < n:
        k = rng.integers(1, digits + 1, size=(2 * n, 2))
        low = np.where(k == 1, 0, 10 ** (k - 1))
        vals = rng.integers(low, 10**k)
        for a, b in vals.tolist():
            if (a, b) in seen:
                continue
            seen.add((a, b))
            lines.append(f"{a}+{b}".ljust(qw) + f"_{a + b}".ljust(aw))
            if len(lines) == n:
                break
    return lines


def _date_text(d: datetime.date, style: int) -> str:
    month, day = _MONTHS[d.month - 1], _DAYS[d.weekday()]
    forms = (
        f"{month} {d.day}, {d.year}",
        f"{month.capitalize()} {d.day}, {d.year}",
        f"{month.upper()} {d.day}, {d.year}",
        f"{day.capitalize()}, {month.capitalize()} {d.day}, {d.year}",
        f"{day[:3]}, {month[:3]} {d.day}, {d.year}",
        f"{d.day} {month[:3].capitalize()} {d.year}",
        f"{d.day:02d}.{d.month:02d}.{d.year}",
        f"{d.month}/{d.day}/{d.year % 100:02d}",
        f"{d.year}/{d.month}/{d.day}",
        f"{d.day} {month} {d.year}",
        f"{day.upper()} {d.day} {month.upper()} {d.year}",
        f"{month[:3]} {d.day:02d} {d.year}",
    )
    return forms[style]


DATE_STYLES = 12


def date_lines(n=50000, *, seed=1984) -> list:
    """Lines of a date-format task in the sequel's ``date.txt`` layout: ``"Tuesday, September 25, 1984"`` padded
    to 29 characters, then ``"_1984-09-25"``.

    Dates are drawn uniformly from 1970-01-01 .. 2029-12-31 and written in one of twelve styles (this module's
    own, drawn uniformly; two-digit years are unambiguous in that range only between 1970 and 2069).

    Parameters
    ----------
    n : int
        Number of lines, 1 .. 1,000,000 (dates and styles may repeat).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    list of str
    """
    n = _check_int(n, "n", 1, _MAX_EXAMPLES)
    rng = np.random.default_rng(_check_seed(seed))
    days = rng.integers(_DATE_FIRST, _DATE_LAST + 1, size=n)
    styles = rng.integers(0, DATE_STYLES, size=n)
    lines = []
    for o, s in zip(days.tolist(), styles.tolist()):
        d = datetime.date.fromordinal(o)
        lines.append(_date_text(d, s).ljust(_DATE_QUESTION_WIDTH) + "_" + d.isoformat())
    return lines


def _date_chars() -> str:
    letters = "".join(sorted(set("".join(_MONTHS + _DAYS))))
    return "0123456789 ,./_-" + letters + letters.upper()


def sequence_vocab(task: str):
    """``(char_to_id, id_to_char)`` of a generated task, as the sequel's ``sequence.get_vocab()`` returns.

    The vocabulary is fixed per task (every character the generator can write, in a fixed order), so it
    does not depend on ``n`` or ``seed``.

    Parameters
    ----------
    task : {"addition", "date"}
    """
    if task == "addition":
        chars = _ADDITION_CHARS
    elif task == "date":
        chars = _date_chars()
    else:
        raise ValueError(f"task: expected 'addition' or 'date', got {task!r}")
    char_to_id = {c: i for i, c in enumerate(chars)}
    return char_to_id, {i: c for c, i in char_to_id.items()}


def lines_to_arrays(lines, task: str):
    """The sequel's ``sequence.load_data`` on ``lines``: split at ``"_"``, map characters to ids, keep the
    order (the lines are already in random order), the last 10% (rounded down) for test.

    Returns
    -------
    (x_train, t_train), (x_test, t_test)
        int64 arrays; ``t`` starts with the id of ``"_"``, as the sequel's decoders expect.
    """
    char_to_id, _ = sequence_vocab(task)
    if not lines:
        raise ValueError("lines: expected at least one line, got none")
    questions, answers = [], []
    for i, line in enumerate(lines):
        cut = line.find("_")
        if cut < 0:
            raise ValueError(f"lines[{i}]: expected a question, '_' and an answer, got {line[:40]!r}")
        questions.append(line[:cut])
        answers.append(line[cut:])
    for what, rows in (("question", questions), ("answer", answers)):
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise ValueError(f"lines: every {what} must have the same width, got widths {sorted(widths)[:5]}")
    try:
        x = np.array([[char_to_id[c] for c in q] for q in questions], dtype=np.int64)
        t = np.array([[char_to_id[c] for c in a] for a in answers], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"lines: character {exc.args[0]!r} is not in the {task} vocabulary") from None
    split_at = len(x) - len(x) // 10
    return (x[:split_at], t[:split_at]), (x[split_at:], t[split_at:])


def load_addition(n=50000, *, seed=1984, digits=3):
    """The sequel's ch07 addition task, generated: ``(x_train, t_train), (x_test, t_test)`` as its
    ``sequence.load_data('addition.txt')`` returns them (90% / 10%), from :func:`addition_lines`;
    the vocabulary is ``sequence_vocab("addition")``."""
    return lines_to_arrays(addition_lines(n, seed=seed, digits=digits), "addition")


def load_date(n=50000, *, seed=1984):
    """A ch08-style date-format task, generated: ``(x_train, t_train), (x_test, t_test)`` as the sequel's
    ``sequence.load_data('date.txt')`` returns them, from :func:`date_lines`; the vocabulary is
    ``sequence_vocab("date")``."""
    return lines_to_arrays(date_lines(n, seed=seed), "date")
