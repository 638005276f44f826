"""The few errors sheetstream raises on purpose, each with the HTTP status it maps to (once, in the server)."""

from __future__ import annotations

from typing import Any


class SheetstreamError(Exception):
    """Base: ``message`` is for a person, ``code`` for a program, ``detail`` carries structured extras."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, **detail: Any):
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.detail}

    def __reduce__(self) -> tuple:
        # Keep the detail when the error crosses a process boundary (the process strategy pickles it).
        return _rebuild, (type(self), self.message, self.detail)


def _rebuild(cls: type[SheetstreamError], message: str, detail: dict[str, Any]) -> SheetstreamError:
    error = cls.__new__(cls)
    SheetstreamError.__init__(error, message, **detail)
    if "retry_after" in detail:
        error.retry_after = detail["retry_after"]  # type: ignore[attr-defined]
    return error


class NotFound(SheetstreamError):
    status = 404
    code = "not_found"


class BadRequest(SheetstreamError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(SheetstreamError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(SheetstreamError):
    status = 415
    code = "unsupported_media_type"


class ClientGone(SheetstreamError):
    """The client went away before the body ended (499, as nginx logs it; nobody reads the answer)."""

    status = 499
    code = "client_closed_request"


class Invalid(SheetstreamError):
    """The input was read but does not fit the table (422)."""

    status = 422
    code = "invalid"


class Busy(SheetstreamError):
    """The processing queue is full; ``retry_after`` seconds is a fair wait (429)."""

    status = 429
    code = "busy"

    def __init__(self, message: str, retry_after: int = 1, **detail: Any):
        super().__init__(message, retry_after=retry_after, **detail)
        self.retry_after = retry_after


class Conflict(SheetstreamError):
    status = 409
    code = "conflict"


class Cancelled(SheetstreamError):
    """The job was cancelled (``DELETE /jobs/{id}``); its transaction was rolled back."""

    status = 409
    code = "cancelled"


class StoreUnavailable(SheetstreamError):
    """The database cannot be reached or went away (503)."""

    status = 503
    code = "database_unavailable"
