"""The one atomic, fsynced file writer behind every file fastconv writes (checkpoints, histories, plots).

``atomic_write(path, write)`` calls ``write(f)`` on a new temporary file ``.<name>.<8 hex>.tmp`` beside
``path``, flushes and fsyncs it, renames it over ``path`` (``os.replace``) and fsyncs the directory, so that
after a crash or a power loss ``path`` is either the old file or the complete new one, never empty or
partial. Any failure, ``KeyboardInterrupt`` included, removes the temporary file and leaves ``path`` as it
was. Only a process killed outright (SIGKILL, power loss) can leave a temporary file: ``temp_target`` tells
such a file from any other, so that its owner can remove it at its next start.

The temporary file is created with mode 0o666 and ``O_EXCL``, so the kernel applies the umask as it does
for ``open(path, "w")`` (``tempfile.mkstemp`` would create 0o600 whatever the umask).
"""

from __future__ import annotations

import os
import re
import secrets

__all__ = ["atomic_write", "temp_target"]

_TMP_SUFFIX = ".tmp"
# ".<target name>.<8 lowercase hex digits>.tmp"
_TMP_RE = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{8}\.tmp$", re.DOTALL)
# Leave room under NAME_MAX (255) for the dot, the random part and the suffix.
_MAX_TARGET_CHARS = 200
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def temp_target(name):
    """The file name a temporary file of :func:`atomic_write` was standing in for, or None.

    Parameters
    ----------
    name : str
        A file name (no directory).

    Returns
    -------
    str or None
        ``"epoch-0001.npz"`` for ``".epoch-0001.npz.0a1b2c3d.tmp"``; None for a name this writer does not
        produce.
    """
    m = _TMP_RE.match(name)
    return None if m is None else m.group("target")


def _create_temp(directory, name):
    for _ in range(100):
        tmp = os.path.join(directory, f".{name[:_MAX_TARGET_CHARS]}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: no free temporary file name for {name} after 100 tries")


def _fsync_directory(directory):
    """Make the rename durable where the platform lets a directory be opened (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Write a file atomically and durably: temporary file, flush, fsync, rename, fsync of the directory.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    write : callable
        ``write(f)`` writes the content to ``f``, a binary file object open for writing (``f.write``,
        ``np.savez(f, ...)``, ``fig.savefig(f)``).

    Raises
    ------
    OSError
        Creating, writing, syncing or renaming failed (a full disk: ``errno.ENOSPC``); its ``filename`` is
        ``path`` when the error named no file or the temporary one. ``path`` is untouched and the
        temporary file removed, as on any exception ``write`` raises.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = _create_temp(directory, os.path.basename(path))
        try:
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:  # already renamed, or gone: the original error is the one to report
                pass
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            # say which file could not be written, not which temporary (os.replace names both)
            exc.filename, exc.filename2 = path, None
        raise
    _fsync_directory(directory)
