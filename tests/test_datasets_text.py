"""fastconv.datasets' text loaders and generators: the fortune-file reader, load_fortunes_zh and load_fortunes on
small files written here (and on Debian's fortunes / fortunes-zh when installed, else skipped with the install
command), the fixed split, the generated addition and date tasks (format, determinism, the sequel's return
values), and hostile input refused with one-line errors.
"""

import datetime
import re
from pathlib import Path

import fastconv._textdata as td
import numpy as np
import pytest
from fastconv.datasets import (
    DataNotFoundError,
    addition_lines,
    date_lines,
    load_addition,
    load_date,
    load_fortunes,
    load_fortunes_zh,
    read_fortunes,
    sequence_vocab,
)

SYSTEM = Path("/usr/share/games/fortunes")


def write_fortunes(path: Path, entries, trailing=True):
    text = "\n%\n".join(entries) + ("\n%\n" if trailing else "\n")
    path.write_text(text, encoding="utf-8")


def split_of(k):
    return {8: "val", 9: "test"}.get(k % 10, "train")


def real(package, name):
    if not (SYSTEM / name).is_file():
        pytest.skip(f"{SYSTEM / name} not installed: apt-get install {package}")
    return SYSTEM


# ======================================================================================================
# the fortune-file reader


def test_read_fortunes_splits_and_cleans(tmp_path):
    f = tmp_path / "x"
    f.write_text(
        "\x1b[32m《题》\x1b[m\n作者：某\n一二三，\n%\n%\nB\x08Bo\x08ol\x08ld   \n  second line\n%\nlast, no %\n",
        encoding="utf-8",
    )
    assert read_fortunes(f) == ["《题》\n作者：某\n一二三，", "Bold\n  second line", "last, no %"]


def test_read_fortunes_refuses_non_utf8(tmp_path):
    f = tmp_path / "bad"
    f.write_bytes(b"fine\n%\n\xff\xfe broken\n")
    with pytest.raises(ValueError, match=r"bad: not UTF-8 text \(byte \d+"):
        read_fortunes(f)


def test_read_fortunes_refuses_a_huge_file(tmp_path, monkeypatch):
    monkeypatch.setattr(td, "MAX_FORTUNE_BYTES", 100)
    f = tmp_path / "big"
    f.write_text("a\n%\n" * 50)
    with pytest.raises(ValueError, match="larger than the limit of 100 bytes"):
        read_fortunes(f)


# ======================================================================================================
# load_fortunes_zh


@pytest.fixture
def zh_dir(tmp_path):
    for name, n in (("tang300", 23), ("song100", 12), ("chinese", 11)):
        write_fortunes(tmp_path / name, [f"{name[0]}{k}甲乙\n丙丁" for k in range(n)], trailing=name != "song100")
    return tmp_path


def test_load_fortunes_zh_split_vocab_and_corpus(zh_dir):
    out = {dt: load_fortunes_zh(dt, ("tang300", "song100"), path=zh_dir) for dt in ("train", "val", "test")}
    vocab = out["train"][1]
    assert all(o[1] == vocab for o in out.values())  # the same vocabulary for every split
    assert all(o[2] == {i: c for c, i in vocab.items()} for o in out.values())
    assert list(vocab.values()) == list(range(len(vocab)))
    for dt, (corpus, c2i, i2c) in out.items():
        assert corpus.dtype == np.int32
        want = []
        for name, n in (("tang300", 23), ("song100", 12)):
            want += [[*f"{name[0]}{k}甲乙\n丙丁", "<eos>"] for k in range(n) if split_of(k) == dt]
        assert [i2c[i] for i in corpus] == [tok for entry in want for tok in entry], dt
    # 35 entries: test holds k = 9, 19 of tang300 and 9 of song100
    assert "".join(out["test"][2][i] for i in out["test"][0]).split("<eos>")[:-1] == [
        "t9甲乙\n丙丁", "t19甲乙\n丙丁", "s9甲乙\n丙丁"]


def test_load_fortunes_zh_default_parts(zh_dir):
    corpus, c2i, _ = load_fortunes_zh(path=zh_dir)
    assert "c" in c2i and "s" in c2i and "t" in c2i
    assert corpus.size > 0


def test_load_fortunes_zh_missing_file_says_what_to_install(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"apt-get install fortunes-zh"):
        load_fortunes_zh(path=tmp_path)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        ({"data_type": "dev"}, ValueError, r"data_type: expected one of \('train', 'val', 'test'\), got 'dev'"),
        ({"parts": ()}, ValueError, "parts: expected at least one name"),
        ({"parts": ("../../etc/passwd",)}, ValueError, "parts: expected a plain file name"),
        ({"parts": ("tang300", "tang300")}, ValueError, "parts: names repeat"),
        ({"parts": (3,)}, TypeError, "parts: expected a str naming a fortune file, got int"),
        ({"path": 5}, TypeError, "path: expected a directory as str or os.PathLike, got int"),
    ],
)
def test_load_fortunes_zh_bad_arguments(zh_dir, kwargs, exc, msg):
    kwargs.setdefault("path", zh_dir)
    with pytest.raises(exc, match=msg):
        load_fortunes_zh(**kwargs)


def test_load_fortunes_zh_real_files():
    root = real("fortunes-zh", "tang300")
    n = len(read_fortunes(root / "tang300"))
    assert n == 313
    sizes = {dt: load_fortunes_zh(dt, ("tang300",))[0] for dt in ("train", "val", "test")}
    _, c2i, i2c = load_fortunes_zh("test", ("tang300",))
    eos = c2i["<eos>"]
    counts = {dt: int(np.sum(c == eos)) for dt, c in sizes.items()}
    assert counts == {"train": 251, "val": 31, "test": 31}
    first_test = "".join(i2c[i] for i in sizes["test"][: list(sizes["test"]).index(eos)])
    assert first_test == read_fortunes(root / "tang300")[9]  # the fixed split: entry 9 is the first test entry
    assert "\x1b" not in "".join(c2i)


# ======================================================================================================
# load_fortunes


@pytest.fixture
def en_dir(tmp_path):
    a = [f"alpha beta entry{k}" for k in range(20)]
    a[9] = "alpha onlyintest " + " ".join(["gamma"] * 10)  # a test entry, longer than maxlen
    b = [f"Delta, DON'T\x08T stop {k}" for k in range(10)]
    write_fortunes(tmp_path / "cat-a", a)
    write_fortunes(tmp_path / "cat-b", b)
    return tmp_path


def test_load_fortunes_labels_padding_vocabulary(en_dir):
    (xtr, ttr), (_, tv), (xte, tte), w2i = load_fortunes(("cat-a", "cat-b"), num_words=8, maxlen=6, path=en_dir)
    assert xtr.dtype == np.int32 and ttr.dtype == np.int64 and xtr.shape == (16 + 8, 6)
    assert list(ttr) == [0] * 16 + [1] * 8 and list(tv) == [0, 0, 1] and list(tte) == [0, 0, 1]
    # train counts: alpha 16, beta 16, delta 8, don't 8, stop 8, ... ties in alphabetical order; 8 - 2 kept
    assert w2i == {"alpha": 2, "beta": 3, "delta": 4, "don't": 5, "stop": 6, "0": 7}
    assert list(xtr[0]) == [0, 0, 0, 2, 3, 1]  # padded at the front; entry0 is outside the vocabulary
    assert list(xtr[16]) == [0, 0, 4, 5, 6, 7]  # the overstruck DON'T is one word
    # the long test entry keeps its first 6 words; "onlyintest" and "gamma" never appear in training
    assert list(xte[0]) == [2, 1, 1, 1, 1, 1]
    assert "onlyintest" not in w2i


def test_load_fortunes_missing_and_bad_arguments(en_dir):
    with pytest.raises(DataNotFoundError, match=r"apt-get install fortunes\b"):
        load_fortunes(("cat-a", "nosuch"), path=en_dir)
    with pytest.raises(ValueError, match="categories: expected a plain file name"):
        load_fortunes(("/etc/passwd",), path=en_dir)
    with pytest.raises(TypeError, match="num_words: expected an int, got bool"):
        load_fortunes(("cat-a",), num_words=True, path=en_dir)
    with pytest.raises(ValueError, match=r"maxlen: expected an int in \[1, 65536\], got 0"):
        load_fortunes(("cat-a",), maxlen=0, path=en_dir)


def test_load_fortunes_real_files():
    real("fortunes", "computers")
    cats = ("computers", "science", "politics", "songs-poems")
    (xtr, ttr), (_, tv), (_, tte), w2i = load_fortunes(cats)
    n = [len(read_fortunes(SYSTEM / c)) for c in cats]
    assert len(ttr) + len(tv) + len(tte) == sum(n)
    assert len(tte) == sum(k // 10 for k in n)  # entries 9, 19, ... of each file
    assert xtr.shape[1] == 50 and max(w2i.values()) == 9999
    assert set(np.unique(ttr)) == {0, 1, 2, 3}


# ======================================================================================================
# generated tasks


def test_addition_lines_format_and_sums():
    lines = addition_lines(2000, seed=3)
    assert len(set(lines)) == 2000
    for line in lines:
        m = re.fullmatch(r"(\d{1,3})\+(\d{1,3}) *_(\d+) *", line)
        assert m and len(line) == 7 + 5, line
        assert int(m[1]) + int(m[2]) == int(m[3])
        assert line.index("_") == 7
    assert {len(line.split("+")[0]) for line in lines} == {1, 2, 3}  # short operands are drawn too


def test_generators_are_deterministic():
    assert addition_lines(500, seed=7) == addition_lines(500, seed=7)
    assert addition_lines(500, seed=7) != addition_lines(500, seed=8)
    assert date_lines(500, seed=7) == date_lines(500, seed=7)
    assert date_lines(500, seed=7) != date_lines(500, seed=8)


def test_load_addition_as_the_sequel():
    (x_train, t_train), (x_test, t_test) = load_addition(1000, seed=1)
    c2i, i2c = sequence_vocab("addition")
    assert x_train.shape == (900, 7) and t_train.shape == (900, 5) and x_test.shape == (100, 7)
    assert x_train.dtype == np.int64 and np.all(t_train[:, 0] == c2i["_"])
    lines = addition_lines(1000, seed=1)
    assert "".join(i2c[i] for i in x_test[-1]) + "".join(i2c[i] for i in t_test[-1]) == lines[-1]


def test_date_lines_are_right():
    lines = date_lines(3000, seed=5)
    for line in lines:
        q, a = line[:29], line[29:]
        assert a[0] == "_" and len(line) == 40
        d = datetime.date.fromisoformat(a[1:])
        assert str(d.year) in q or f"{d.year % 100:02d}" in q
        assert str(d.day) in q
    assert len({line[:29].strip()[:3].lower() for line in lines}) > 12  # the styles vary


def test_load_date_shapes_and_vocab():
    (x_train, t_train), (x_test, t_test) = load_date(200, seed=2)
    c2i, _ = sequence_vocab("date")
    assert x_train.shape == (180, 29) and t_train.shape == (180, 11) and x_test.shape == (20, 29)
    assert np.all(t_test[:, 0] == c2i["_"]) and x_train.max() < len(c2i)


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: addition_lines(0), ValueError, r"n: expected an int in \[1, "),
        (lambda: addition_lines(60, digits=1), ValueError, r"n: expected an int in \[1, 50\], got 60"),
        (lambda: addition_lines(10, digits=9), ValueError, r"digits: expected an int in \[1, 5\], got 9"),
        (lambda: addition_lines(10, seed=-1), TypeError, "seed: expected an int >= 0, got -1"),
        (lambda: date_lines(10**7), ValueError, r"n: expected an int in \[1, 1000000\]"),
        (lambda: date_lines(2.5), TypeError, "n: expected an int, got float"),
        (lambda: sequence_vocab("ptb"), ValueError, "task: expected 'addition' or 'date', got 'ptb'"),
        (lambda: td.lines_to_arrays(["12+3_15", "1+2 _3"], "addition"), ValueError, "every answer must have"),
        (lambda: td.lines_to_arrays(["1x2_3"], "addition"), ValueError, "character 'x' is not in the addition"),
        (lambda: td.lines_to_arrays(["no underscore"], "addition"), ValueError, r"lines\[0\]: expected"),
    ],
)
def test_generators_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
