"""The channel between calor and instances that run elsewhere (Dask workers): instance events
go to the server as JSON, and the server's answer carries what it asks of running instances
(abort, refresh resources, snapshot).

Workers POST their events to the server (``/executor/events``) and keep them until the server
has acknowledged them, so a server restart loses nothing: the worker retries until it is back.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from calor.domain.ports import (
    Finished,
    InstanceEvent,
    Output,
    Progress,
    SnapshotDone,
    Started,
    Transfer,
)
from calor.domain.transfer import FileFilter, Upload

_TYPES: dict[str, type[Any]] = {
    "started": Started,
    "output": Output,
    "progress": Progress,
    "transfer": Transfer,
    "snapshot": SnapshotDone,
    "finished": Finished,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def encode_event(event: InstanceEvent) -> dict[str, Any]:
    data = asdict(event)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
        elif isinstance(value, tuple):
            data[key] = list(value)
    data["type"] = _NAMES[type(event)]
    return data


def decode_event(data: dict[str, Any]) -> InstanceEvent:
    """One event from a worker; ValueError when it is not one."""
    try:
        cls = _TYPES[data["type"]]
        fields = {k: v for k, v in data.items() if k != "type"}
        if "at" in fields:
            fields["at"] = datetime.fromisoformat(fields["at"])
        if "results" in fields:
            fields["results"] = tuple(fields["results"])
        event: InstanceEvent = cls(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an instance event: {exc}") from None
    if not isinstance(event.row_id, int):
        raise ValueError("row_id must be an integer")
    return event


@dataclass
class Orders:
    """What the server asks of a worker's running instances."""

    abort: list[int] = field(default_factory=list)
    refresh: list[int] = field(default_factory=list)
    snapshot: list[tuple[int, str, Upload]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "abort": self.abort,
            "refresh": self.refresh,
            "snapshot": [
                {
                    "row_id": row,
                    "id": sid,
                    "bucket": t.bucket,
                    "prefix": t.prefix,
                    "whitelist": t.filter.whitelist,
                    "blacklist": t.filter.blacklist,
                }
                for row, sid, t in self.snapshot
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Orders":
        return cls(
            abort=[int(r) for r in data.get("abort", [])],
            refresh=[int(r) for r in data.get("refresh", [])],
            snapshot=[
                (
                    int(s["row_id"]),
                    str(s["id"]),
                    Upload(
                        s["bucket"],
                        s.get("prefix") or "",
                        FileFilter(s["whitelist"], s["blacklist"]),
                    ),
                )
                for s in data.get("snapshot", [])
            ],
        )
