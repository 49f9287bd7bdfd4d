"""Manifest and delta wire format: compact, fast to build for 100k tickets, exact round trip.

Body = kind byte (`M` full, `D` delta) | format version byte | zlib(payload). The payload is a
list of length-prefixed sections: first a JSON "meta" object (the header, row count and the
dictionaries of every column), then the ticket rows as COLUMNS: ticket ids as 16 raw UUID
bytes each, every other field as an index into a dictionary of its distinct values (so
statuses, types, zones and day sets cost a byte or less once compressed), holder blobs
length-prefixed. Columns compress far better than rows because like sits next to like.

Version 2 is version 1 plus the codes a ticketing system printed (manifests/model.py): the
header's code lookup key and signing keys, and after the holder sections four more: which
rows have a code hash (a byte each), those 16-byte hashes, each row's count of retired codes,
and those (hash, state byte). A manifest without any of it is still written as version 1,
byte for byte as before, so gates of earlier releases keep reading every event that has no
such codes; they refuse a version 2 body whole (malformed) and keep their last manifest.

A venue's TicketToken keys (the header's `legacy`) need no version of their own: each
format's first key (the one TicketToken issues with now) sits where earlier releases read the
format's only key, and only the further keys of a rotation go beside it, under names earlier
readers skip. A header with at most one key a format is therefore written as it always was,
and an earlier gate given more still scans every code of the current keys.

Decoding never trusts the input: anything that is not a well-formed body of the expected kind
raises ManifestRejected('malformed') and nothing else.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

from manifests.model import (
    EventFacts,
    Manifest,
    ManifestDelta,
    ManifestHeader,
    RetiredCode,
    Scope,
    TicketRow,
)
from manifests.policy import ScanPolicy, ZoneRules
from manifests.signing import ManifestRejected
from protocol.backend_codes import CODE_DIGEST_BYTES, ED25519_KEY_BYTES, LOOKUP_KEY_BYTES
from protocol.credential import CodeState, LegacyKeys

VERSION = 1
VERSION_CODES = 2  # VERSION plus backend code hashes and keys (see above)
KIND_FULL, KIND_DELTA = b"M", b"D"
# Chosen by measurement (bench/manifest_bench.py): the ticket ids and sealed names dominate
# and do not compress, so higher levels buy almost nothing and cost build time.
COMPRESS_LEVEL = 6
MAX_PAYLOAD = 256 << 20  # refuse decompression bombs; 100k tickets are ~4 MB
_U32 = struct.Struct("<I")
_UUID_RUN = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*")
_LITTLE = sys.byteorder == "little"


class _Malformed(Exception):
    """Internal: the body is not what it claims; surfaced as ManifestRejected('malformed')."""


# ---- typed values: one table says how each annotated field type is checked and carried ----

_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: type(v) is str,
    "int": lambda v: type(v) is int,
    "bool": lambda v: type(v) is bool,
    "str | None": lambda v: v is None or type(v) is str,
    "int | None": lambda v: v is None or type(v) is int,
    "bytes | None": lambda v: v is None or type(v) is bytes,
    "tuple[str, ...]": lambda v: type(v) is tuple and all(type(x) is str for x in v),
}


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _unb64(text: Any) -> bytes:
    if type(text) is not str:
        raise _Malformed("expected base64 text")
    return base64.b64decode(text, validate=True)


def _plain_to_json(obj: Any) -> dict[str, Any]:
    """A dataclass of simple fields as JSON: tuples become lists, bytes base64."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.type not in _CHECKS:
            raise TypeError(f"{type(obj).__name__}.{f.name}: no wire form for {f.type}")
        out[f.name] = _b64(value) if f.type == "bytes | None" else value
    return out


def _check(obj: Any) -> Any:
    for f in dataclasses.fields(obj):
        if not _CHECKS[str(f.type)](getattr(obj, f.name)):
            raise _Malformed(f"{type(obj).__name__}.{f.name} has the wrong type")
    return obj


def _plain_from_json(cls: type, data: Any) -> Any:
    if type(data) is not dict:
        raise _Malformed(f"{cls.__name__} is not an object")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.type == "tuple[str, ...]" and type(value) is list:
            value = tuple(value)
        elif f.type == "bytes | None" and value is not None:
            value = _unb64(value)
        kwargs[f.name] = value
    return _check(cls(**kwargs))


def _header_to_json(h: ManifestHeader) -> dict[str, Any]:
    return {
        "event": _plain_to_json(h.event),
        "scope": _plain_to_json(h.scope),
        "revision": h.revision,
        "issued_at_ms": h.issued_at_ms,
        "expires_at_ms": h.expires_at_ms,
        "issuer_keys": [[k, _b64(v)] for k, v in h.issuer_keys.items()],
        "policy": h.policy.to_json(),
        "zone_rules": h.zone_rules.to_json(),
        "legacy": _legacy_to_json(h.legacy),
        "rotation_secret": _b64(h.rotation_secret),
        "revoked": dict(h.revoked),
    }


# LegacyKeys field -> (where its first key goes, as earlier releases wrote their only one;
# where the rest go, only when there are any)
_LEGACY_KEYS = {
    "format_a_keys": ("format_a_key", "format_a_more_keys"),
    "format_b_keys": ("format_b_key", "format_b_more_keys"),
    "format_c_secrets": ("format_c_secret", "format_c_more_secrets"),
}
_LEGACY_TIMES = ("rotation_interval_ms", "format_c_validity_ms")


def _legacy_to_json(keys: LegacyKeys) -> dict[str, Any]:
    """The venue's TicketToken keys in the shape earlier releases read (see the module's
    docstring), the further keys of a rotation after it."""
    out: dict[str, Any] = {}
    more: dict[str, Any] = {}
    for name, (first, rest) in _LEGACY_KEYS.items():
        values: tuple[bytes, ...] = getattr(keys, name)
        out[first] = _b64(values[0]) if values else None
        if len(values) > 1:
            more[rest] = [_b64(v) for v in values[1:]]
    out.update({name: getattr(keys, name) for name in _LEGACY_TIMES}, **more)
    return out


def _legacy_from_json(d: Any) -> LegacyKeys:
    if type(d) is not dict:
        raise _Malformed("legacy keys are not an object")
    fields: dict[str, Any] = {}
    for name, (first, rest) in _LEGACY_KEYS.items():
        head, tail = d.get(first), d.get(rest, [])
        if type(tail) is not list or (head is None and tail):
            raise _Malformed(f"{rest} is not a list following {first}")
        fields[name] = tuple(_unb64(v) for v in ([] if head is None else [head, *tail]))
    for name in _LEGACY_TIMES:
        if name in d:
            if type(d[name]) is not int:
                raise _Malformed(f"legacy {name} is not an integer")
            fields[name] = d[name]
    return LegacyKeys(**fields)


def _code_keys_to_json(h: ManifestHeader) -> dict[str, Any]:
    return {
        "code_lookup_key": _b64(h.code_lookup_key),
        "code_signing_keys": [_b64(k) for k in h.code_signing_keys],
    }


def _code_keys_from_json(d: dict[str, Any]) -> dict[str, Any]:
    lookup, signing = d["code_lookup_key"], d["code_signing_keys"]
    key = None if lookup is None else _unb64(lookup)
    if key is not None and len(key) != LOOKUP_KEY_BYTES:
        raise _Malformed("code lookup key has the wrong length")
    if type(signing) is not list:
        raise _Malformed("code signing keys are not a list")
    keys = tuple(_unb64(k) for k in signing)
    if any(len(k) != ED25519_KEY_BYTES for k in keys):
        raise _Malformed("a code signing key is not a raw Ed25519 key")
    return {"code_lookup_key": key, "code_signing_keys": keys}


def _header_from_json(d: Any, version: int = VERSION) -> ManifestHeader:
    if type(d) is not dict:
        raise _Malformed("header is not an object")
    issuer_keys = {}
    for key_id, public in d["issuer_keys"]:
        if type(key_id) is not int:
            raise _Malformed("issuer key id is not an integer")
        issuer_keys[key_id] = _unb64(public)
    access = d["zone_rules"]
    if type(access) is not dict or not all(
        type(v) is list and all(type(z) is str for z in v) for v in access.values()
    ):
        raise _Malformed("zone rules are not zone -> zones")
    revoked = d["revoked"]
    if type(revoked) is not dict or not all(type(v) is str for v in revoked.values()):
        raise _Malformed("revoked is not ticket id -> reason")
    if type(d["policy"]) is not dict:
        raise _Malformed("policy is not an object")
    secret = d["rotation_secret"]
    header = ManifestHeader(
        event=_plain_from_json(EventFacts, d["event"]),
        scope=_plain_from_json(Scope, d["scope"]),
        revision=d["revision"],
        issued_at_ms=d["issued_at_ms"],
        expires_at_ms=d["expires_at_ms"],
        issuer_keys=issuer_keys,
        policy=_check(ScanPolicy.from_json(d["policy"])),
        zone_rules=ZoneRules({k: tuple(v) for k, v in access.items()}),
        legacy=_legacy_from_json(d["legacy"]),
        rotation_secret=None if secret is None else _unb64(secret),
        revoked=revoked,
        **(_code_keys_from_json(d) if version == VERSION_CODES else {}),
    )
    if not all(type(getattr(header, k)) is int for k in ("revision", "issued_at_ms")):
        raise _Malformed("revision and issue time must be integers")
    if type(header.expires_at_ms) is not int:
        raise _Malformed("expiry must be an integer")
    return header


# ---- columns ----

# Every TicketRow field but these travels as "dictionary of distinct values + index column".
_CODE_FIELDS = ("code_digest", "retired_codes")  # version 2 only
_SPECIAL = ("ticket_id", "valid_days", "holder_sealed", *_CODE_FIELDS)
_DICT_FIELDS = tuple(f for f in dataclasses.fields(TicketRow) if f.name not in _SPECIAL)
_ROW_ORDER = tuple(f.name for f in dataclasses.fields(TicketRow))


def _typecode(size: int) -> str:
    return "B" if size <= 0x100 else "H" if size <= 0x10000 else "I"


def _raw(arr: array) -> bytes:
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def _unraw(typecode: str, raw: bytes, n: int) -> array:
    arr = array(typecode)
    arr.frombytes(raw)
    if len(arr) != n:
        raise _Malformed("column length does not match the row count")
    if not _LITTLE:
        arr.byteswap()
    return arr


def _dict_column(values: list[Any]) -> tuple[list[Any], list[int]]:
    """Distinct values in first-seen order, and each row's index into them."""
    index: dict[Any, int] = {}
    idx = [index.setdefault(v, len(index)) for v in values]
    return list(index), idx


def _expand(dictionary: list[Any], idx: Sequence[int]) -> list[Any]:
    return list(map(dictionary.__getitem__, idx))


def _seq_code(idx: list[int]) -> list[int]:
    """For many-valued columns (order refs, seats) whose rows come in runs: 0 = same as the
    row before, 1 = the next value not seen yet, k + 2 = dictionary entry k. Runs of small
    codes compress far better than raw ever-growing indexes."""
    out: list[int] = []
    prev, new = -1, 0
    append = out.append
    for i in idx:
        if i == prev:
            append(0)
        elif i == new:
            append(1)
            new += 1
        else:
            append(i + 2)
        prev = i
    return out


def _seq_decode(codes: array, size: int) -> list[int]:
    out: list[int] = []
    prev, new = -1, 0
    append = out.append
    for c in codes:
        if c == 0:
            if prev < 0:
                raise _Malformed("column starts with a repeat")
            i = prev
        elif c == 1:
            i, new = new, new + 1
        else:
            i = c - 2
        if i >= size:
            raise _Malformed("column index past its dictionary")
        append(i)
        prev = i
    return out


def _front_code(strings: list[str]) -> bytes | None:
    """Each string as (characters shared with the one before, rest): sequential references
    like TT-4100001, TT-4100003 shrink to a byte or two. None when a length exceeds a byte."""
    out, prev = bytearray(), ""
    for s in strings:
        shared, limit = 0, min(len(s), len(prev), 255)
        while shared < limit and s[shared] == prev[shared]:
            shared += 1
        rest = s[shared:].encode()
        if len(rest) > 255:
            return None
        out += bytes((shared, len(rest)))
        out += rest
        prev = s
    return bytes(out)


def _front_decode(raw: bytes, count: int) -> list[str]:
    out, prev, pos = [], "", 0
    for _ in range(count):
        shared, length = raw[pos], raw[pos + 1]
        if shared > len(prev) or pos + 2 + length > len(raw):
            raise _Malformed("front-coded dictionary is inconsistent")
        prev = prev[:shared] + raw[pos + 2 : pos + 2 + length].decode()
        out.append(prev)
        pos += 2 + length
    if pos != len(raw):
        raise _Malformed("front-coded dictionary has trailing bytes")
    return out


_SEQ_MIN = 256  # dictionaries larger than this get sequence codes and front coding


def _encode_column(values: list[Any], string_typed: bool) -> tuple[Any, bytes, bytes]:
    """(meta entry, index section, dictionary section) for one column."""
    dictionary, idx = _dict_column(values)
    if len(dictionary) <= _SEQ_MIN:
        return dictionary, _raw(array(_typecode(len(dictionary)), idx)), b""
    codes = _seq_code(idx)
    width = _typecode(len(dictionary) + 2)
    entry: dict[str, Any] = {"n": len(dictionary), "width": width}
    coded = None
    if string_typed:
        none_at = dictionary.index(None) if None in dictionary else None
        coded = _front_code([s for s in dictionary if s is not None])
    if coded is None:
        entry["values"] = dictionary
        return entry, _raw(array(width, codes)), b""
    entry["none_at"] = none_at
    return entry, _raw(array(width, codes)), coded


def _decode_column(
    entry: Any, idx_raw: bytes, dict_raw: bytes, n: int, check: Callable[[Any], bool]
) -> list[Any]:
    if type(entry) is list:
        if not all(map(check, entry)):
            raise _Malformed("column values have the wrong type")
        return _expand(entry, _unraw(_typecode(len(entry)), idx_raw, n))
    size, width = entry["n"], entry["width"]
    if type(size) is not int or size < 0 or width not in ("B", "H", "I"):
        raise _Malformed("column dictionary header is malformed")
    if "values" in entry:
        dictionary: list[Any] = entry["values"]
        if type(dictionary) is not list:
            raise _Malformed("column values are not a list")
    else:
        none_at = entry["none_at"]
        if none_at is not None and (type(none_at) is not int or not 0 <= none_at < size):
            raise _Malformed("column dictionary places None outside itself")
        dictionary = [*_front_decode(dict_raw, size - (none_at is not None))]
        if none_at is not None:
            dictionary.insert(none_at, None)
    if len(dictionary) != size or not all(map(check, dictionary)):
        raise _Malformed("column dictionary does not match its header")
    return _expand(dictionary, _seq_decode(_unraw(width, idx_raw, n), size))


def _days_to_wire(days: tuple[str, ...], event_days: dict[str, int]) -> int | list[str]:
    """A day set as a bitmask over the event's days when that is exact, else the list."""
    positions = [event_days.get(d, -1) for d in days]
    if -1 in positions or positions != sorted(set(positions)):
        return list(days)
    return sum(1 << p for p in positions)


def _days_from_wire(value: Any, event_days: tuple[str, ...]) -> tuple[str, ...]:
    if type(value) is int:
        if value < 0 or value >> len(event_days):
            raise _Malformed("day mask names days the event does not have")
        return tuple(d for i, d in enumerate(event_days) if value >> i & 1)
    if type(value) is list and all(type(d) is str for d in value):
        return tuple(value)
    raise _Malformed("valid days are neither a mask nor a list")


def _encode_ids(ids: list[str]) -> tuple[str, bytes]:
    joined = "".join(ids)
    if _UUID_RUN.fullmatch(joined) and len(joined) == 36 * len(ids):
        return "uuid", bytes.fromhex(joined.replace("-", ""))
    return "json", json.dumps(ids, ensure_ascii=False).encode()


def _decode_ids(mode: Any, raw: bytes, n: int) -> list[str]:
    if mode == "uuid":
        if len(raw) != 16 * n:
            raise _Malformed("ticket id column length does not match the row count")
        h = raw.hex()
        return [
            f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-"
            f"{h[i + 20 : i + 32]}"
            for i in range(0, 32 * n, 32)
        ]
    if mode == "json":
        ids = json.loads(raw)
        if type(ids) is not list or len(ids) != n or not all(type(i) is str for i in ids):
            raise _Malformed("ticket id list does not match the row count")
        return ids
    raise _Malformed("unknown ticket id encoding")


def _encode_rows(
    rows: Sequence[TicketRow], header: ManifestHeader
) -> tuple[int, dict, list[bytes]]:
    """The body's format version, the rows' meta entries and their sections."""
    ids_mode, ids_raw = _encode_ids([r.ticket_id for r in rows])
    meta: dict[str, Any] = {"n": len(rows), "ids": ids_mode, "dicts": {}}
    sections = [ids_raw]
    for f in _DICT_FIELDS:
        values = [getattr(r, f.name) for r in rows]
        entry, idx_raw, dict_raw = _encode_column(values, f.type in ("str", "str | None"))
        meta["dicts"][f.name] = entry
        sections += (idx_raw, dict_raw)
    days_dict, days_idx = _dict_column([r.valid_days for r in rows])
    event_days = {d: i for i, d in enumerate(header.event.days)}
    meta["dicts"]["valid_days"] = [_days_to_wire(t, event_days) for t in days_dict]
    sections.append(_raw(array(_typecode(len(days_dict)), days_idx)))
    blobs = [r.holder_sealed for r in rows]
    lengths = [0 if b is None else len(b) + 1 for b in blobs]
    typecode = _typecode(max(lengths, default=0) + 1)
    meta["holder_width"] = typecode
    sections.append(_raw(array(typecode, lengths)))
    sections.append(b"".join(b for b in blobs if b))
    coded = any(r.code_digest is not None or r.retired_codes for r in rows)
    if coded and header.code_lookup_key is None:
        raise ValueError("rows carry code hashes but the header not the key they were made with")
    if not (coded or header.code_lookup_key is not None or header.code_signing_keys):
        return VERSION, meta, sections
    meta["codes"], code_sections = _encode_codes(rows)
    return VERSION_CODES, meta, sections + code_sections


def _decode_rows(
    meta: dict, sections: list[bytes], header: ManifestHeader, version: int
) -> list[TicketRow]:
    n = meta["n"]
    extra = len(_CODE_SECTIONS) if version == VERSION_CODES else 0
    if type(n) is not int or n < 0 or len(sections) != 2 * len(_DICT_FIELDS) + 4 + extra:
        raise _Malformed("row sections do not match the format")
    if extra:
        code_sections, sections = sections[-extra:], sections[:-extra]
    columns: dict[str, list[Any]] = {"ticket_id": _decode_ids(meta["ids"], sections[0], n)}
    dicts = meta["dicts"]
    for i, f in enumerate(_DICT_FIELDS):
        idx_raw, dict_raw = sections[1 + 2 * i], sections[2 + 2 * i]
        columns[f.name] = _decode_column(dicts[f.name], idx_raw, dict_raw, n, _CHECKS[str(f.type)])
    days = [_days_from_wire(v, header.event.days) for v in dicts["valid_days"]]
    columns["valid_days"] = _expand(days, _unraw(_typecode(len(days)), sections[-3], n))
    if meta["holder_width"] not in ("B", "H", "I"):
        raise _Malformed("unknown holder length width")
    lengths = _unraw(meta["holder_width"], sections[-2], n)
    blob = sections[-1]
    ends = list(accumulate(max(k - 1, 0) for k in lengths))
    if (ends[-1] if ends else 0) != len(blob):
        raise _Malformed("holder blobs do not add up")
    columns["holder_sealed"] = [
        None if k == 0 else blob[e - k + 1 : e] for k, e in zip(lengths, ends, strict=True)
    ]
    if extra:
        digests, retired = _decode_codes(meta["codes"], code_sections, n)
        if header.code_lookup_key is None and (any(digests) or any(retired)):
            raise _Malformed("rows carry code hashes but the header has no lookup key")
        columns["code_digest"], columns["retired_codes"] = digests, retired
    else:
        columns["code_digest"], columns["retired_codes"] = [None] * n, [()] * n
    return list(map(TicketRow, *(columns[name] for name in _ROW_ORDER)))


# ---- version 2: backend code hashes ----

_CODE_SECTIONS = ("has_code", "code_digests", "retired_counts", "retired_codes")
_RETIRED_STATES = (CodeState.SUPERSEDED, CodeState.BLOCKED)  # state byte n: [n - 1]
RETIRED_ENTRY_BYTES = CODE_DIGEST_BYTES + 1


def pack_retired_codes(codes: Sequence[RetiredCode]) -> bytes:
    """Retired codes as (hash, state byte) each: the manifest's form, and the gate's column."""
    out = bytearray()
    for code in codes:
        if type(code.digest) is not bytes or len(code.digest) != CODE_DIGEST_BYTES:
            raise ValueError(f"a code hash is {CODE_DIGEST_BYTES} bytes")
        out += code.digest
        out.append(_RETIRED_STATES.index(code.state) + 1)  # CURRENT is no retired state
    return bytes(out)


def unpack_retired_codes(raw: bytes) -> tuple[RetiredCode, ...]:
    if len(raw) % RETIRED_ENTRY_BYTES:
        raise ValueError("retired codes do not come in whole entries")
    codes = []
    for at in range(0, len(raw), RETIRED_ENTRY_BYTES):
        state = raw[at + CODE_DIGEST_BYTES]
        if not 1 <= state <= len(_RETIRED_STATES):
            raise ValueError(f"retired code state {state}")
        codes.append(RetiredCode(raw[at : at + CODE_DIGEST_BYTES], _RETIRED_STATES[state - 1]))
    return tuple(codes)


def _encode_codes(rows: Sequence[TicketRow]) -> tuple[dict[str, Any], list[bytes]]:
    """Each row's code hash (a presence byte, then the hashes of the rows that have one) and
    its retired codes (a count, then the entries): 16 bytes a coded ticket, and next to
    nothing for rows without (their bytes are runs that compress away)."""
    digests = [r.code_digest for r in rows]
    for digest in digests:
        if digest is not None and (type(digest) is not bytes or len(digest) != CODE_DIGEST_BYTES):
            raise ValueError(f"a code hash is {CODE_DIGEST_BYTES} bytes")
    counts = [len(r.retired_codes) for r in rows]
    width = _typecode(max(counts, default=0) + 1)
    return {"retired_width": width}, [
        bytes(d is not None for d in digests),
        b"".join(d for d in digests if d is not None),
        _raw(array(width, counts)),
        b"".join(pack_retired_codes(r.retired_codes) for r in rows if r.retired_codes),
    ]


def _decode_codes(
    entry: Any, sections: list[bytes], n: int
) -> tuple[list[bytes | None], list[tuple[RetiredCode, ...]]]:
    has, packed, counts_raw, retired_raw = sections
    if type(entry) is not dict or entry["retired_width"] not in ("B", "H", "I"):
        raise _Malformed("code hash columns are described wrongly")
    if len(has) != n or has.translate(None, b"\x00\x01"):
        raise _Malformed("code hash presence is not a 0 or 1 a row")
    if len(packed) != CODE_DIGEST_BYTES * sum(has):
        raise _Malformed("code hashes do not match the rows")
    digests: list[bytes | None] = []
    at = 0
    for present in has:
        digests.append(packed[at : at + CODE_DIGEST_BYTES] if present else None)
        at += CODE_DIGEST_BYTES * present
    counts = _unraw(entry["retired_width"], counts_raw, n)
    if sum(counts) * RETIRED_ENTRY_BYTES != len(retired_raw):
        raise _Malformed("retired codes do not add up")
    retired: list[tuple[RetiredCode, ...]] = []
    at = 0
    for k in counts:
        end = at + k * RETIRED_ENTRY_BYTES
        retired.append(unpack_retired_codes(retired_raw[at:end]) if k else ())
        at = end
    return digests, retired


# ---- framing ----


def _frame(kind: bytes, version: int, meta: dict, sections: list[bytes]) -> bytes:
    meta_raw = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
    parts = []
    for s in (meta_raw, *sections):
        parts.append(_U32.pack(len(s)))
        parts.append(s)
    payload = b"".join(parts)
    return kind + bytes([version]) + zlib.compress(payload, COMPRESS_LEVEL)


def _unframe(kind: bytes, body: bytes) -> tuple[int, dict, list[bytes]]:
    if (
        type(body) is not bytes
        or len(body) < 2
        or body[:1] != kind
        or body[1] not in (VERSION, VERSION_CODES)
    ):
        raise _Malformed("not a manifest body of the expected kind and version")
    inflater = zlib.decompressobj()
    payload = inflater.decompress(body[2:], MAX_PAYLOAD)
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise _Malformed("compressed payload is truncated, oversized or has trailing bytes")
    sections, pos = [], 0
    view = memoryview(payload)
    while pos < len(payload):
        (length,) = _U32.unpack_from(payload, pos)
        pos += 4
        if pos + length > len(payload):
            raise _Malformed("section runs past the end")
        sections.append(bytes(view[pos : pos + length]))
        pos += length
    if not sections:
        raise _Malformed("empty payload")
    meta = json.loads(sections[0])
    if type(meta) is not dict:
        raise _Malformed("meta is not an object")
    return body[1], meta, sections[1:]


def _rejecting(what: str, decode: Callable[[], Any]) -> Any:
    try:
        return decode()
    except ManifestRejected:
        raise
    except Exception as exc:  # any failure on untrusted bytes is one refusal, never a crash
        detail = str(exc) if isinstance(exc, _Malformed) else type(exc).__name__
        raise ManifestRejected("malformed", f"{what} does not decode ({detail})") from None


def _header_meta(header: ManifestHeader, version: int) -> dict[str, Any]:
    out = _header_to_json(header)
    if version == VERSION_CODES:
        out.update(_code_keys_to_json(header))
    return out


# ---- public API ----


def encode_manifest(m: Manifest) -> bytes:
    rows = list(m.tickets.values())
    if list(m.tickets) != [r.ticket_id for r in rows]:
        raise ValueError("manifest tickets must be keyed by their own ticket_id")
    version, meta, sections = _encode_rows(rows, m.header)
    meta["header"] = _header_meta(m.header, version)
    return _frame(KIND_FULL, version, meta, sections)


def decode_manifest(b: bytes) -> Manifest:
    def decode() -> Manifest:
        version, meta, sections = _unframe(KIND_FULL, b)
        header = _header_from_json(meta["header"], version)
        rows = _decode_rows(meta, sections, header, version)
        tickets = {r.ticket_id: r for r in rows}
        if len(tickets) != len(rows):
            raise _Malformed("duplicate ticket ids")
        return Manifest(header, tickets)

    return _rejecting("manifest", decode)


def decode_manifest_header(b: bytes) -> ManifestHeader:
    """Only the header of a full manifest body: what a device needs to judge the next one
    without building its 100k rows again."""

    def decode() -> ManifestHeader:
        version, meta, _ = _unframe(KIND_FULL, b)
        return _header_from_json(meta["header"], version)

    return _rejecting("manifest", decode)


def encode_delta(d: ManifestDelta) -> bytes:
    version, meta, sections = _encode_rows(d.upserts, d.header)
    meta["header"] = _header_meta(d.header, version)
    meta["base_revision"] = d.base_revision
    meta["removed_n"] = len(d.removed)
    meta["removed_ids"], removed_raw = _encode_ids(list(d.removed))
    return _frame(KIND_DELTA, version, meta, [*sections, removed_raw])


def decode_delta(b: bytes) -> ManifestDelta:
    def decode() -> ManifestDelta:
        version, meta, sections = _unframe(KIND_DELTA, b)
        header = _header_from_json(meta["header"], version)
        if not sections or type(meta["base_revision"]) is not int:
            raise _Malformed("delta lacks its base revision or removals")
        removed = _decode_ids(meta["removed_ids"], sections[-1], meta["removed_n"])
        rows = _decode_rows(meta, sections[:-1], header, version)
        return ManifestDelta(header, meta["base_revision"], tuple(rows), tuple(removed))

    return _rejecting("manifest delta", decode)
