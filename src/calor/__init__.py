"""calor: a self-hosted compute platform that speaks the Qarnot compute REST API."""

__version__ = "0.1.0"
