"""The secrets of one attempt as files: ``<dir>/<key>`` holds the value of secret ``<key>``
(``app/db/password`` is the file ``password`` in ``app/db``). The directory sits beside the
working directory, never in it, so secrets are never uploaded as results nor snapshotted; it
is written when the attempt starts and removed when its command ends.
"""

import contextlib
import os
import shutil
from pathlib import Path

from calor.domain.secrets import check_key
from calor.runner.files import make_dirs

SECRETS_ENV = "CALOR_SECRETS_DIR"  # where the instance finds the directory


def secrets_dir(work_root: Path, task_uuid: str, instance_id: int) -> Path:
    """Beside TASK_PATH (``<task>/<instance>/task``); an instance on a pool has its own,
    not its slot's."""
    return work_root / task_uuid / str(instance_id) / "secrets"


def write_secrets(directory: Path, values: dict[str, str], shared: bool = False) -> None:
    """Owner-only modes (0700 directories, 0400 files); ``shared``: readable by every user,
    for a container that runs as another user than calor (DOCKER_USER)."""
    remove_secrets(directory)  # what a crashed attempt may have left
    dir_mode, file_mode = (0o555, 0o444) if shared else (0o700, 0o400)
    make_dirs(directory.parent)
    directory.mkdir(mode=0o700)
    made = [directory]
    for raw, value in sorted(values.items()):
        key = check_key(raw)  # stored keys are checked already; a path never escapes
        path = directory.joinpath(*key.split("/"))
        for parent in reversed(path.relative_to(directory).parents):
            folder = directory / parent
            if folder != directory and not folder.is_dir():
                folder.mkdir(mode=0o700)
                made.append(folder)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(value.encode())
        path.chmod(file_mode)
    for folder in reversed(made):  # writable until filled, read-only afterwards
        folder.chmod(dir_mode)


def remove_secrets(directory: Path) -> None:
    if not directory.exists():
        return
    for root, dirs, _files in os.walk(directory):
        for name in dirs:
            with contextlib.suppress(OSError):
                (Path(root) / name).chmod(0o700)
    with contextlib.suppress(OSError):
        directory.chmod(0o700)
    shutil.rmtree(directory, ignore_errors=True)
