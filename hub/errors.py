"""JSON errors for every failure: `{"error": {"code": ..., "message": ...}}`.

Handlers raise ApiError; the middleware turns it (and aiohttp's own HTTP errors, and any bug)
into that shape, so a client can always branch on `code`. Messages never carry secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("hub.http")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 413 else "Request body is too large."
        response = error_response(exc.status, code, message)
        if "Allow" in exc.headers:  # a 405 names the methods the path takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ConnectionResetError:  # the device's link dropped mid-request: nothing to answer
        log.info("client gone", extra={"path": request.path, "method": request.method})
        raise
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "internal_error", "The hub hit an internal error.")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 with a code saying what is wrong."""
    raw = await request.read()  # raises 413 past client_max_size
    return parse_json_object(raw)


def malformed(message: str) -> ApiError:
    return ApiError(400, "malformed_json", message)


def _no_constant(name: str) -> Any:
    raise malformed(f"Body is not valid JSON: {name} is not a JSON number.")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Anything Python's reader refuses late (nesting past the recursion limit, integers
    past its 4,300-digit limit, NaN, a lone UTF-16 surrogate that no database or hash can
    encode) is malformed here, before a handler sees it."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise malformed("Body is not valid UTF-8.") from None
    except RecursionError:
        raise malformed("Body is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise malformed(f"Body is not valid JSON: {exc}.") from None
    except ValueError:  # int(): more digits than Python converts
        raise malformed("Body holds a number too long to read.") from None
    if "\\u" in text:  # only an escape can make a lone surrogate
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise malformed("Body holds a lone UTF-16 surrogate (\\ud800-\\udfff).") from None
    if not isinstance(body, dict):
        raise ApiError(400, "expected_object", "Body must be a JSON object.")
    return body


class Fields:
    """Typed access to a JSON object's fields; rejects unknown fields and wrong types."""

    def __init__(self, body: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(400, "unknown_field", f"Unknown field: {unknown[0]}.")
        self.body = body

    def text(self, name: str, *, required: bool = True, max_len: int = 200) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise ApiError(400, "missing_field", f"Field {name} is required.")
            return None
        if not isinstance(value, str):
            raise ApiError(400, "invalid_field", f"Field {name} must be a string.")
        value = value.strip()
        if not value or len(value) > max_len:
            raise ApiError(400, "invalid_field", f"Field {name} must be 1 to {max_len} characters.")
        return value

    def integer(
        self, name: str, *, required: bool = True, low: int = 0, high: int = 2**53
    ) -> int | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise ApiError(400, "missing_field", f"Field {name} is required.")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ApiError(
                400, "invalid_field", f"Field {name} must be an integer from {low} to {high}."
            )
        return value

    def text_list(self, name: str, *, max_items: int = 50) -> list[str]:
        value = self.body.get(name, [])
        if not isinstance(value, list) or len(value) > max_items:
            raise ApiError(400, "invalid_field", f"Field {name} must be a list of strings.")
        if not all(isinstance(v, str) and 0 < len(v.strip()) <= 100 for v in value):
            raise ApiError(400, "invalid_field", f"Field {name} must be a list of strings.")
        return [v.strip() for v in value]

    def int_map(self, name: str) -> dict[str, int] | None:
        value = self.body.get(name)
        if value is None:
            return None
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()
        )
        if not ok or len(value) > 100:
            raise ApiError(400, "invalid_field", f"Field {name} must map ids to integers.")
        return dict(value)
