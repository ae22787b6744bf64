"""Files between buckets and an instance's TASK_PATH: resources in before the command runs (and
again on request while it runs), results out when it ends, snapshots while it runs.

What counts as a result is decided against a baseline taken after the resources arrived: a file
is a result when it is new or its size or modification time changed since.
"""

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from calor.domain.ports import ObjectAccess
from calor.domain.transfer import FileFilter, ResourceSource, Upload, destination

Stamp = tuple[int, int]  # size, mtime in ns
ProgressSink = Callable[[float], None]

PROGRESS_EVERY = 0.5  # seconds between two progress reports of one transfer


class TransferError(Exception):
    pass


@dataclass
class Inputs:
    """What the instance was given: object ETags per path (to fetch only what changed on a
    refresh) and the files' stamps once written (to tell inputs from results)."""

    etags: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, Stamp] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    keys: tuple[str, ...]
    size: int


def scan(root: Path) -> dict[str, Stamp]:
    """Regular files under ``root`` by path relative to it ("/" separators); symbolic links
    are never followed, so an instance cannot make calor read outside its directory."""
    found: dict[str, Stamp] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel = base.relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
        for name in filenames:
            with contextlib.suppress(OSError):
                st = (base / name).lstat()
                if (st.st_mode & 0o170000) == 0o100000:  # regular file
                    found[prefix + name] = (st.st_size, st.st_mtime_ns)
    return found


class _Meter:
    def __init__(self, total: int, report: ProgressSink) -> None:
        self.total, self.done, self.report = total, 0, report
        self.last = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.report(100.0 * self.done / self.total if self.total else 100.0)


def _inside(root: Path, path: Path) -> bool:
    """``path``'s directory, with links resolved, is ``root`` or under it."""
    real_root = root.resolve()
    parent = path.parent.resolve()
    return parent == real_root or real_root in parent.parents


class TaskFiles:
    def __init__(self, objects: ObjectAccess) -> None:
        self.objects = objects

    def fetch(
        self,
        user_id: int,
        sources: tuple[ResourceSource, ...],
        workdir: Path,
        inputs: Inputs,
        progress: ProgressSink,
    ) -> int:
        """Copy the sources' objects into ``workdir`` (those whose ETag changed since the last
        fetch, when ``inputs`` has one); later sources win over earlier ones for a same path.
        Returns how many files were written."""
        plan: dict[str, tuple[ResourceSource, str, int, str]] = {}
        for source in sources:
            if not self.objects.exists(user_id, source.bucket):
                raise TransferError(f"the resource bucket {source.bucket!r} does not exist")
            for info in self.objects.list(user_id, source.bucket, source.prefix):
                dest = destination(info.key, source)
                if dest is not None:
                    plan[dest] = (source, info.key, info.size, info.etag)
        wanted = {d: p for d, p in plan.items() if inputs.etags.get(d) != p[3]}
        meter = _Meter(sum(p[2] for p in wanted.values()), progress)
        for dest, (source, key, _size, etag) in sorted(wanted.items()):
            target = workdir / dest
            existing = target.parent
            while not existing.exists():
                existing = existing.parent
            # checked before and after: the instance may have made a directory a link
            if not _inside(workdir, existing / "x"):
                raise TransferError(f"{dest!r} would be written outside TASK_PATH")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not _inside(workdir, target):
                raise TransferError(f"{dest!r} would be written outside TASK_PATH")
            partial = target.with_name(f".{target.name}.calor-part")
            with partial.open("wb") as out:
                for chunk in self.objects.read(user_id, source.bucket, key):
                    out.write(chunk)
                    meter.add(len(chunk))
            partial.replace(target)
            st = target.stat()
            inputs.etags[dest] = etag
            inputs.stamps[dest] = (st.st_size, st.st_mtime_ns)
        progress(100.0)
        return len(wanted)

    @staticmethod
    def changed(workdir: Path, inputs: Inputs, keep: FileFilter) -> dict[str, Stamp]:
        """Files that are not untouched inputs, narrowed by the filter."""
        return {
            path: stamp
            for path, stamp in scan(workdir).items()
            if inputs.stamps.get(path) != stamp and keep.wanted(path)
        }

    def publish(
        self,
        user_id: int,
        target: Upload,
        workdir: Path,
        files: dict[str, Stamp],
        progress: ProgressSink,
        stop: Callable[[], bool] = lambda: False,
    ) -> Published:
        """Upload ``files`` (paths under ``workdir``) to ``target``; a file removed meanwhile
        is skipped. ``stop`` is asked between files."""
        meter = _Meter(sum(size for size, _ in files.values()), progress)
        keys: list[str] = []
        size = 0
        for path in sorted(files):
            if stop():
                break
            source = workdir / path
            if not source.is_file() or source.is_symlink():
                continue
            key = target.prefix + path
            stored = self.objects.write(user_id, target.bucket, key, source)
            keys.append(key)
            size += stored
            meter.add(stored)
        progress(100.0)
        return Published(tuple(keys), size)


# tries at making a working directory whose task's directory other instances may remove
MKDIR_TRIES = 10


def make_dirs(path: Path) -> None:
    """``mkdir -p`` next to other instances of the same task, each of which removes the
    task's directory once it is empty (the end of ``InstanceRunner.run``): one may remove
    it between the making of the task's directory and that of the instance's own in it."""
    for _ in range(MKDIR_TRIES - 1):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    path.mkdir(parents=True, exist_ok=True)
