"""What every runtime (host, Docker) offers the instance runner, and what they share."""

import codecs
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from calor.domain.ports import InstanceJob

TextSink = Callable[[str], None]


@dataclass
class RunResult:
    exit_code: int | None
    cpu_time_sec: float
    peak_memory_mb: int
    error: str | None


class Handle(Protocol):
    """A started attempt, as the executor sees it: it can be aborted or interrupted."""

    cancelled: bool
    interrupted: bool
    # where the server reaches the attempt's network, for port forwarding (None: it has no
    # network of its own the server can reach)
    address: str | None

    def terminate_tree(self) -> None:
        """Abort: stop everything the attempt started, within 2 s."""

    def kill_tree(self) -> None:
        """Stop it now (the server is stopping; the attempt is requeued)."""


@dataclass
class Launch:
    """One attempt, ready to run: where, with what environment, and where its output goes."""

    job: InstanceJob
    workdir: Path  # on this machine
    env: dict[str, str]
    # DOCKER_CMD as words (domain/command.py), run as they are: no shell is added;
    # empty: the image's own ENTRYPOINT/CMD
    argv: list[str]
    stdout: TextSink
    stderr: TextSink
    # called once the attempt runs, with what identifies it for crash recovery
    on_start: Callable[[Handle, int, float], None]
    # the attempt's secrets as files (runner/secrets_dir.py), shown to it read-only at
    # Runtime.secrets_path; None: it is granted none
    secrets_dir: Path | None = None


class Runtime(Protocol):
    name: str  # "host" or "docker"

    @property
    def description(self) -> str:
        """How instances run, for people (e.g. "in a bubblewrap sandbox")."""

    def paths(self, workdir: Path) -> tuple[str, str]:
        """TASK_PATH and TMP_PATH as the instance sees them."""

    def secrets_path(self, directory: Path) -> str:
        """Where the instance sees its secrets directory (CALOR_SECRETS_DIR)."""

    def base_environment(self, task_path: str) -> dict[str, str]:
        """Variables the instance gets before its constants (PATH, HOME… where needed)."""

    def banner(self, job: InstanceJob) -> str | None:
        """A first stdout line that says how the instance runs, if the user should know."""

    def give_files(self, job: InstanceJob, workdir: Path) -> None:
        """Files calor has put in a running attempt's working directory (resources fetched
        again) become the attempt's to change, where it runs as a user of its own."""

    def run(self, launch: Launch) -> RunResult:
        """Run the attempt to its end; errors become the result's error, never exceptions."""

    def reap_leftovers(self) -> int:
        """At server start: stop what a previous server of this store left running."""


def describe_exit(code: int) -> str | None:
    """The instance error for an exit code (None for success); 128+n is death by signal n."""
    if code == 0:
        return None
    if code == 127:
        return "exited with code 127: command not found"
    if code == 126:
        return "exited with code 126: command not executable"
    if 128 < code < 128 + 65:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            return f"exited with code {code}"
        return f"killed by signal {code - 128} ({name})"
    return f"exited with code {code}"


class LineAssembler:
    """Bytes in, whole lines of text out (a partial line waits for its end, or for the end)."""

    MAX_PENDING = 65536  # a huge line without a newline is passed on anyway

    def __init__(self, emit: TextSink, on_line: TextSink | None = None) -> None:
        self._emit = emit
        self._on_line = on_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        cut = text.rfind("\n")
        if cut < 0:
            self._pending = text
            if len(text) > self.MAX_PENDING:
                self._pending = ""
                self._emit(text)
            return
        complete, self._pending = text[: cut + 1], text[cut + 1 :]
        self._emit(complete)
        if self._on_line is not None:
            for line in complete.splitlines():
                self._on_line(line)

    def close(self) -> None:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if rest:
            self._emit(rest)
            if self._on_line is not None:
                self._on_line(rest)
