"""Work an executor starts without waiting for it (a refresh, a snapshot upload)."""

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("calor.executor")


def in_background(name: str, work: Callable[..., None], *args: Any) -> None:
    """Run ``work(*args)`` on a daemon thread; a failure is logged, never raised."""

    def guarded() -> None:
        try:
            work(*args)
        except Exception:
            log.exception("%s failed", name)

    threading.Thread(target=guarded, daemon=True, name=name).start()
