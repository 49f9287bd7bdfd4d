"""JSON errors for every failure: `{"error": {"code": ..., "message": ...}}`.

Handlers raise ApiError; the middleware turns it (and aiohttp's own HTTP errors, a database
fault, and any bug) into that shape, so a client can always branch on `code`. Messages never
carry secrets. Every error answer is made by `error_response` and counted by the middleware
(app[ERROR_COUNTS], shown by /metrics as hub_errors_total).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from aiohttp import web

from hub.store_base import StoreUnavailable

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


_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")
# Where error_response leaves the code for the middleware, and _database_fault what the
# database said.
_ERROR_CODE = web.ResponseKey("error_code", str)
_FAULT = web.ResponseKey("database_fault", str)
OTHER_CODE = "other"


class ErrorCounts:
    """Error answers by code, for /metrics. Codes are the hub's own constants; still, the label
    set stays bounded whatever reaches here: a code not shaped like one, or past the first
    MAX_CODES distinct ones, is counted as OTHER_CODE."""

    MAX_CODES = 100

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, code: str) -> None:
        known = code in self._counts or len(self._counts) < self.MAX_CODES
        if not (known and _CODE.fullmatch(code)):
            code = OTHER_CODE
        self._counts[code] += 1

    def items(self) -> list[tuple[str, int]]:
        return sorted(self._counts.items())


ERROR_COUNTS = web.AppKey("error_counts", ErrorCounts)


def error_response(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    response[_ERROR_CODE] = code
    return response


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


# A constraint or a misuse is a bug (internal_error); these say the database itself failed.
_DB_FAULTS = (sqlite3.OperationalError, StoreUnavailable)
DB_FAULT_CODES = frozenset({"db_unavailable", "disk_full"})


def _database_fault(exc: Exception) -> web.Response:
    """The database cannot be used (disk full, I/O error, file gone or unreadable): 503."""
    full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if full or "disk is full" in str(exc):
        response = error_response(503, "disk_full", "The hub's disk is full: nothing is stored.")
    else:
        response = error_response(503, "db_unavailable", "The hub database is not reachable.")
    response[_FAULT] = f"{type(exc).__name__}: {exc}"
    return response


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error answer goes out through here: counted by its code, and a database fault
    (whoever answered it, /health/db too) logged for the operator."""
    response = await _answer(request, handler)
    code = response.get(_ERROR_CODE)
    if code is None:
        return response
    counts = request.app.get(ERROR_COUNTS)
    if counts is not None:
        counts.add(code)
    if code in DB_FAULT_CODES:
        where = {"path": request.path, "method": request.method, "error": response.get(_FAULT)}
        log.error("database fault", extra={"code": code, **where})
    return response


async def _answer(
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
    except _DB_FAULTS as exc:
        return _database_fault(exc)
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


def _number(text: str) -> int | float:
    """5591.0 is an integer to JSON Schema, so it is one here too."""
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Anything Python's reader refuses late (nesting past the recursion limit, integers
    past its 4,300-digit limit, NaN, a lone UTF-16 surrogate that no database or hash can
    encode) is malformed here, before a handler sees it."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, parse_constant=_no_constant, parse_float=_number)
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


MAX_INT = 2**53  # past this a JSON reader may round
# A character str.strip() keeps: spelt out, since JSON Schema's \s (ECMA-262) and Python's
# differ (\x1c-\x1f, \x85, \ufeff).
NOT_BLANK = r"[^\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def matches(pattern: str, value: str) -> bool:
    """`pattern` searched in `value` as JSON Schema reads it: there `$` is the very end, in
    Python also the place before a final newline, which let "x\n" past an anchored pattern
    the document says refuses it."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.search(pattern, value) is not None


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a request body: what Fields accepts and what /openapi.json shows, from one
    declaration. An optional field sent as null counts as absent unless `nullable` is off."""

    kind: str  # text, integer, texts, int_map, or raw (checked by the route's own parser)
    required: bool = True
    nullable: bool = True
    max_len: int = 200
    low: int = 0
    high: int = MAX_INT
    min_items: int = 0
    max_items: int = 50
    choices: tuple[str, ...] = ()
    code: str = "invalid_field"  # the code for a value outside `choices` or `pattern`
    pattern: str = NOT_BLANK  # searched, as JSON Schema does: anchor it to match whole
    raw_schema: dict[str, Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        if self.kind == "raw":
            assert self.raw_schema is not None
            return self.raw_schema
        schema: dict[str, Any]
        if self.kind == "text" and self.choices:
            schema = {"type": "string", "enum": list(self.choices)}
        elif self.kind == "text":
            schema = {"type": "string", "maxLength": self.max_len, "pattern": self.pattern}
        elif self.kind == "integer":
            schema = {"type": "integer", "minimum": self.low, "maximum": self.high}
        elif self.kind == "texts":
            item = {"type": "string", "maxLength": 100, "pattern": NOT_BLANK}
            schema = {"type": "array", "items": item, "maxItems": self.max_items}
            if self.min_items:
                schema["minItems"] = self.min_items
        else:
            value = {"type": "integer", "minimum": 0, "maximum": self.high}
            schema = {"type": "object", "additionalProperties": value}
            schema["maxProperties"] = self.max_items
        if self.nullable and not self.required and self.kind != "texts":
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        return schema


def text(
    max_len: int = 200,
    *,
    required: bool = True,
    nullable: bool = True,
    choices: tuple[str, ...] = (),
    code: str = "invalid_field",
    pattern: str = NOT_BLANK,
) -> Field:
    """Text with a non-space character (stored stripped), or one of `choices` exactly."""
    return Field("text", required, nullable, max_len, choices=choices, code=code, pattern=pattern)


def integer(low: int = 0, high: int = MAX_INT, *, required: bool = True) -> Field:
    return Field("integer", required, low=low, high=high)


def texts(max_items: int = 50, *, min_items: int = 0) -> Field:
    """A list of short texts; absent is empty."""
    return Field("texts", min_items > 0, False, min_items=min_items, max_items=max_items)


def int_map(high: int = MAX_INT, max_items: int = 100) -> Field:
    """Ids to non-negative integers."""
    return Field("int_map", False, high=high, max_items=max_items)


def raw(schema: dict[str, Any], *, required: bool = True) -> Field:
    """A field its route checks itself (Fields only documents it)."""
    return Field("raw", required, raw_schema=schema)


class Body:
    """A route's JSON request body, declared once: Fields checks a request against it and
    /openapi.json documents it (hub/openapi.py reads it off the handler, see `accepts`)."""

    def __init__(
        self,
        *,
        at_least_one: bool = False,
        one_of: tuple[str, ...] = (),
        any_of: tuple[str, ...] = (),
        **fields: Field,
    ) -> None:
        self.fields = fields
        self.names = frozenset(fields)
        self.at_least_one = at_least_one
        self.one_of = one_of  # exactly one of these must be given (not null)
        self.any_of = any_of  # at least one of these must be given (not null)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "properties": {name: f.json_schema() for name, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [name for name, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        if self.at_least_one:
            out["minProperties"] = 1
        for key, names in (("oneOf", self.one_of), ("anyOf", self.any_of)):
            if names:
                out[key] = [
                    {"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in names
                ]
        return out


H = TypeVar("H", bound=Callable[..., Any])


def accepts(body: Body) -> Callable[[H], H]:
    """Marks a handler with the body it reads, so the document shows exactly that."""

    def mark(handler: H) -> H:
        handler.request_body = body  # type: ignore[attr-defined]
        return handler

    return mark


def request_body(handler: Callable[..., Any]) -> Body | None:
    return getattr(handler, "request_body", None)


_TEXT, _INTEGER, _TEXTS, _INT_MAP = text(), integer(), texts(), int_map()


class Fields:
    """Typed access to a JSON object's fields; rejects unknown fields and wrong types. Given
    a Body, its declarations set every limit (a differing limit passed here is a bug)."""

    def __init__(self, body: dict[str, Any], allowed: Body | set[str]) -> None:
        self.spec = allowed if isinstance(allowed, Body) else None
        names = allowed.names if isinstance(allowed, Body) else allowed
        unknown = sorted(set(body) - names)
        if unknown:
            raise ApiError(400, "unknown_field", f"Unknown field: {unknown[0]}.")
        self.body = body
        if self.spec is not None and self.spec.at_least_one and not body:
            listed = ", ".join(self.spec.names)
            raise ApiError(400, "missing_field", f"Send at least one of {listed}.")
        if self.spec is not None and self.spec.one_of:
            given = [n for n in self.spec.one_of if body.get(n) is not None]
            if len(given) != 1:
                listed = " or ".join(self.spec.one_of)
                code = "missing_field" if not given else "invalid_field"
                raise ApiError(400, code, f"Send exactly one of {listed}.")
        wanted = self.spec.any_of if self.spec is not None else ()
        if wanted and all(body.get(n) is None for n in wanted):
            raise ApiError(400, "missing_field", f"Send at least one of {', '.join(wanted)}.")

    def _limits(self, name: str, default: Field, **given: Any) -> Field:
        """The field's declaration (or `default` with the arguments, without a Body)."""
        declared = self.spec.fields.get(name) if self.spec is not None else None
        if declared is None:
            if self.spec is not None:
                raise TypeError(f"field {name} is not declared in the route's Body")
            return replace(default, **{k: v for k, v in given.items() if v is not None})
        for key, value in given.items():
            if value is not None and getattr(declared, key) != value:
                raise TypeError(f"field {name}: {key}={value!r} differs from the Body")
        return declared

    def _absent(self, name: str, f: Field) -> None:
        if f.required:
            raise ApiError(400, "missing_field", f"Field {name} is required.")
        if not f.nullable and name in self.body:
            raise ApiError(400, "invalid_field", f"Field {name} must not be null.")

    def text(
        self, name: str, *, required: bool | None = None, max_len: int | None = None
    ) -> str | None:
        f = self._limits(name, _TEXT, required=required, max_len=max_len)
        value = self.body.get(name)
        if value is None:
            self._absent(name, f)
            return None
        if not isinstance(value, str):
            raise ApiError(400, "invalid_field", f"Field {name} must be a string.")
        if f.choices:
            if value not in f.choices:
                raise ApiError(400, f.code, f"{name} must be one of {', '.join(f.choices)}.")
            return value
        stripped = value.strip()
        if not stripped or len(value) > f.max_len:
            raise ApiError(
                400, "invalid_field", f"Field {name} must be 1 to {f.max_len} characters."
            )
        if f.pattern != NOT_BLANK and not matches(f.pattern, value):
            raise ApiError(400, f.code, f"Field {name} is not in its format.")
        return stripped

    def need_text(self, name: str) -> str:
        """A text this handler cannot do without here (declared required, or one of a
        `one_of` pair that was the one sent)."""
        value = self.text(name)
        if value is None:
            raise ApiError(400, "missing_field", f"Field {name} is required.")
        return value

    def integer(
        self,
        name: str,
        *,
        required: bool | None = None,
        low: int | None = None,
        high: int | None = None,
    ) -> int | None:
        f = self._limits(name, _INTEGER, required=required, low=low, high=high)
        value = self.body.get(name)
        if value is None:
            self._absent(name, f)
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not f.low <= value <= f.high:
            raise ApiError(
                400, "invalid_field", f"Field {name} must be an integer from {f.low} to {f.high}."
            )
        return value

    def text_list(self, name: str, *, max_items: int | None = None) -> list[str]:
        f = self._limits(name, _TEXTS, max_items=max_items)
        value = self.body.get(name, [])
        if not isinstance(value, list) or len(value) > f.max_items:
            raise ApiError(400, "invalid_field", f"Field {name} must be a list of strings.")
        if not all(isinstance(v, str) and len(v) <= 100 and v.strip() for v in value):
            raise ApiError(400, "invalid_field", f"Field {name} must be a list of strings.")
        if len(value) < f.min_items:
            raise ApiError(400, "missing_field", f"Field {name} must name at least one.")
        return [v.strip() for v in value]

    def int_map(self, name: str) -> dict[str, int] | None:
        f = self._limits(name, _INT_MAP)
        value = self.body.get(name)
        if value is None:
            return None
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and type(v) is int and 0 <= v <= f.high for k, v in value.items()
        )
        if not ok or len(value) > f.max_items:
            raise ApiError(400, "invalid_field", f"Field {name} must map ids to integers.")
        return dict(value)
