"""The one exception hierarchy; the API maps each class to a status code in api/errors.py."""


class CalorError(Exception):
    """Root of every error calor reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(CalorError):
    """The request is malformed or asks for something impossible; nothing was changed."""


class Unauthorized(CalorError):
    """No token, or a token no user holds."""


class Forbidden(CalorError):
    """The caller may not do this (quotas included)."""


class PaymentRequired(CalorError):
    """The user's budget is spent, or the request exceeds their computing quota (the SDK's
    NotEnoughCreditsException); nothing was created."""


class NotFound(CalorError):
    """The object does not exist for this caller (other users' objects included)."""


class Conflict(CalorError):
    """The request clashes with the current state (e.g. a shortname already taken)."""


class PayloadTooLarge(CalorError):
    """The body is larger than the server accepts."""


class Unavailable(CalorError):
    """A service calor depends on (the database, an engine) cannot be reached right now."""
