"""The one exception the sandbox's domain raises; the app turns it into an error body."""

from __future__ import annotations


class ApiError(Exception):
    """An answer other than success: HTTP status, eToro ``errorCode`` and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def validation(message: str) -> ApiError:
    """400 ``ValidationFailed``: the message names the field and the rule."""
    return ApiError(400, "ValidationFailed", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NotFound", message)


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)
