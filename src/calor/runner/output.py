"""What happens to an attempt's output on its way to the logs (every runtime uses it): a cap
on its size, and progress read from it."""

import contextlib
import re
import threading
from collections.abc import Callable


class OutputBudget:
    """Passes text on until ``limit`` bytes (stdout and stderr together), then one notice.

    A runaway ``yes`` would otherwise fill the store; the process keeps running and its pipes
    keep being read, only the excess is dropped.
    """

    def __init__(self, limit: int, notice: Callable[[str], None]) -> None:
        self.limit = limit
        self.used = 0
        self._notice = notice
        self._lock = threading.Lock()
        self._noticed = False

    def sink(self, emit: Callable[[str], None]) -> Callable[[str], None]:
        def capped(text: str) -> None:
            size = len(text.encode("utf-8", "replace"))
            with self._lock:
                room = self.limit - self.used
                self.used += size
                if room <= 0 or size > room:
                    announce = not self._noticed
                    self._noticed = True
                else:
                    announce = False
            if size <= room:
                emit(text)
                return
            if room > 0:
                emit(text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore"))
            if announce:
                self._notice(
                    f"\n[calor] output limit of {self.limit} bytes reached; the rest of this "
                    "instance's output is discarded\n"
                )

        return capped


def progress_parser(patterns: list[str]) -> Callable[[str], float | None]:
    """DOCKER_PROGRESS1..3: the first group of the first matching regex is the progress."""
    compiled = []
    for p in patterns:
        with contextlib.suppress(re.error):
            compiled.append(re.compile(p))

    def parse(line: str) -> float | None:
        for rx in compiled:
            m = rx.search(line)
            if m:
                text = m.group(1) if m.groups() else m.group(0)
                try:
                    return float(text.replace(",", "."))
                except (TypeError, ValueError):
                    continue
        return None

    return parse
