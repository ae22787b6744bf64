"""A user of the platform, as the services and the API see it."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class User:
    id: int
    email: str
    created_at: datetime
