"""Blobs as files under one directory.

Layout::

    root/.tmp/<random>.tmp       writes in progress (or interrupted: ``sweep`` removes them)
    root/3f/2a/u12%2F3f2a…       blob ``u12/3f2a…``

A blob's file name is its whole id with ``%`` and ``/`` percent-encoded, so ids map one to one
onto names and no id can be both a file and a directory. The two directory levels above it are
the first four characters of the id's last segment (a uuid4 hex: 65,536 evenly filled
directories), other characters than ASCII letters and digits replaced by ``_``, padded with
``_``.

A write goes to a fresh file in ``root/.tmp/`` (same filesystem), is fsynced, renamed into place
with ``os.replace`` (atomic, also over an existing blob) and the directory is fsynced: readers
and a crash at any point see either the old blob or the whole new one, never a part. A reader
holds its file open, so a blob replaced or deleted meanwhile still reads whole.
"""

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from io import FileIO
from pathlib import Path

from calor.storage.blobs import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    check_blob_id,
    check_range,
)

NAME_MAX = 255  # bytes in one file name (Linux, macOS)
TMP_DIR = ".tmp"
TMP_SUFFIX = ".tmp"


# MD5 runs at ~700 MB/s on one core, slower than writing: big chunks are hashed on another
# thread (hashlib lets go of the GIL) while they are written, and the last one while the file
# is fsynced. Small chunks are not worth the hand-over.
OFFLOAD_BYTES = 256 * 1024
_hashers: ThreadPoolExecutor | None = None
_hashers_lock = threading.Lock()


def _hasher() -> ThreadPoolExecutor:
    global _hashers
    if _hashers is None:
        with _hashers_lock:
            if _hashers is None:
                _hashers = ThreadPoolExecutor(os.cpu_count() or 2, "blob-md5")
    return _hashers


def _forget_hashers() -> None:
    global _hashers, _hashers_lock
    _hashers, _hashers_lock = None, threading.Lock()  # a forked child has none of the threads


os.register_at_fork(after_in_child=_forget_hashers)


WRITEBACK_BYTES = 8 << 20


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range of the file to disk now, so that the fsync at the
    end has little left to wait for (64 MiB puts take ~20% less time). On Linux,
    POSIX_FADV_DONTNEED starts the writeback of the range's dirty pages (what
    sync_file_range(2), missing from ``os``, would do) and drops only pages already clean, so
    what was just written stays cached. Elsewhere a mere hint."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):  # a hint: never worth failing a write over
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


_kernel_copy = hasattr(os, "copy_file_range")
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


def _copy(src: int, dst: int) -> int:
    """Copy up to WRITEBACK_BYTES from ``src`` to ``dst`` at their offsets (which advance);
    returns how many, 0 at the end of src. In the kernel where it can be."""
    global _kernel_copy
    if _kernel_copy:
        try:
            return os.copy_file_range(src, dst, WRITEBACK_BYTES)
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
            _kernel_copy = False  # not on this filesystem or kernel: by hand from now on
    data = memoryview(os.read(src, CHUNK_SIZE))
    written = 0
    while written < len(data):
        written += os.write(dst, data[written:])
    return written


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_range(f: FileIO, start: int, stop: int) -> Iterator[bytes]:
    """Yields b"" once first (consumed by ``get``, so that the file closes with the generator
    even if the caller never iterates), then the bytes [start, stop) in chunks."""
    try:
        yield b""
        if start < stop:
            f.seek(start)
        remaining = stop - start
        while remaining > 0:
            data = f.read(min(CHUNK_SIZE, remaining))
            if not data:  # blobs are never written in place; only an outside hand does this
                raise OSError(f"{f.name} ended {remaining} bytes early")
            remaining -= len(data)
            yield data
    finally:
        f.close()


class FsBlobStore:
    """Blobs as files under ``root`` (created if missing). Thread-safe and multi-process-safe:
    nothing is shared but the filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FsBlobStore({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------

    def path(self, blob_id: str) -> Path:
        """Where the blob ``blob_id`` lives (whether it exists or not); ValueError if the id is
        invalid."""
        check_blob_id(blob_id)
        name = blob_id.replace("%", "%25").replace("/", "%2F")
        if len(name.encode()) > NAME_MAX:
            raise ValueError(f"blob id too long for a file name once encoded: {blob_id!r}")
        last = blob_id.rsplit("/", 1)[-1]
        fan = "".join(c if c.isascii() and c.isalnum() else "_" for c in last[:4]).ljust(4, "_")
        return self.root / fan[:2] / fan[2:] / name

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` (two levels under root) durably: each new entry's parent is
        fsynced, so a blob renamed into it survives a crash along with it."""
        for d in (directory.parent, directory):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            _fsync_dir(d.parent)

    # -- writing -------------------------------------------------------------------------

    def _commit(self, path: Path, fill: Callable[[int], int]) -> int:
        """Write a new file with ``fill`` (given its descriptor, returns the size written),
        fsync it and rename it into place at ``path``, durably; returns the size."""
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, suffix=TMP_SUFFIX)
        try:
            try:
                size = fill(fd)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:  # into the fan directory: it exists, but in a young store
                os.replace(tmp_name, path)
            except FileNotFoundError:  # made durably here (or by hand: removed meanwhile)
                self._make_dirs(path.parent)
                os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(path.parent)
        return size

    def _write(self, path: Path, chunks: Iterable[bytes]) -> BlobInfo:
        md5 = hashlib.md5(usedforsecurity=False)

        def fill(fd: int) -> int:
            size = flushed = 0
            hashing: Future[None] | None = None
            # a 1 MiB buffer: small chunks are gathered, chunks of 1 MiB or more written as is
            with open(fd, "wb", buffering=CHUNK_SIZE, closefd=False) as f:
                for chunk in chunks:
                    if hashing is not None:
                        hashing.result()  # MD5 in order, at most one chunk behind
                        hashing = None
                    if len(chunk) >= OFFLOAD_BYTES and type(chunk) is bytes:  # immutable
                        hashing = _hasher().submit(md5.update, chunk)
                    else:
                        md5.update(chunk)
                    size += f.write(chunk)
                    if size - flushed >= WRITEBACK_BYTES:
                        f.flush()
                        _start_writeback(fd, flushed, size - flushed)
                        flushed = size
            if hashing is not None:
                hashing.result()
            return size

        size = self._commit(path, fill)
        return BlobInfo(size, md5.hexdigest())

    def put(self, blob_id: str, chunks: Iterable[bytes]) -> BlobInfo:
        return self._write(self.path(blob_id), chunks)

    def concat(self, blob_id: str, parts: Sequence[str], md5: bool = True) -> BlobInfo:
        """With ``md5`` the parts are read and hashed on their way to the new file; without,
        the kernel copies them (copy_file_range: no bytes through Python, a reflink where the
        filesystem has them)."""
        path = self.path(blob_id)
        sources = [(part, self.path(part)) for part in parts]
        for part, source in sources:  # all there before anything is written
            if not source.is_file():
                raise BlobNotFound(part)

        def opened() -> Generator[int]:
            for part, source in sources:
                try:
                    src = os.open(source, os.O_RDONLY)
                except FileNotFoundError:  # deleted since the check
                    raise BlobNotFound(part) from None
                try:
                    yield src
                finally:
                    os.close(src)

        if md5:

            def chunks() -> Iterator[bytes]:
                for src in opened():
                    while data := os.read(src, CHUNK_SIZE):
                        yield data

            return self._write(path, chunks())

        def fill(fd: int) -> int:
            size = flushed = 0
            with contextlib.closing(opened()) as sources_open:
                for src in sources_open:
                    while copied := _copy(src, fd):
                        size += copied
                        if size - flushed >= WRITEBACK_BYTES:
                            _start_writeback(fd, flushed, size - flushed)
                            flushed = size
            return size

        return BlobInfo(self._commit(path, fill), "")

    # -- reading -------------------------------------------------------------------------

    def get(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_range(start, end)
        path = self.path(blob_id)
        try:
            f = FileIO(path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None
        try:
            size = os.fstat(f.fileno()).st_size
            stop = size if end is None else min(end + 1, size)
            chunks = _read_range(f, min(start, stop), stop)
            next(chunks)  # now inside its try: closing or dropping it closes the file
        except BaseException:
            f.close()
            raise
        return chunks

    def size(self, blob_id: str) -> int:
        try:
            return self.path(blob_id).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    # -- removing ------------------------------------------------------------------------

    def delete(self, blob_id: str) -> None:
        path = self.path(blob_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)  # else a crash could bring back a blob nothing refers to

    def sweep(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        with os.scandir(self.tmp) as entries:
            for entry in entries:
                if not entry.name.endswith(TMP_SUFFIX):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                        continue
                    os.unlink(entry.path)
                except FileNotFoundError:  # finished, failed or swept meanwhile
                    continue
                removed += 1
        return removed
