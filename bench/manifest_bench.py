"""Manifest wire format: build (encode), sign, size, verify, decode and delta apply at 10k and
100k tickets, medians of several runs, beside the targets. Last line: one JSON object."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nacl.signing import SigningKey

from demo.sample import sample_changes, sample_hub_seed, sample_manifest
from manifests import codec
from manifests.codec import decode_manifest, encode_delta, encode_manifest
from manifests.delta import apply_delta, diff, verify_and_apply
from manifests.signing import open_envelope, sign_envelope

NAMED_SHARE = 0.2  # realistic: a fifth of tickets carry a personalised (sealed) holder name
TARGET_BUILD_SIGN_MS = 1500.0
TARGET_BYTES_PER_TICKET = 25.0
DELTA_CHANGES = 1000
KEY_ID = 1
SEED = sample_hub_seed(key_id=KEY_ID)
TRUSTED = {KEY_ID: bytes(SigningKey(SEED).verify_key)}


def median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def measure(n: int, runs: int) -> dict[str, float]:
    m = sample_manifest(n, named_share=NAMED_SHARE)
    build_ms, body = median_ms(lambda: encode_manifest(m), runs)
    sign_ms, envelope = median_ms(lambda: sign_envelope(body, KEY_ID, SEED), runs)
    both_ms, _ = median_ms(lambda: sign_envelope(encode_manifest(m), KEY_ID, SEED), runs)
    verify_ms, _ = median_ms(lambda: open_envelope(envelope, TRUSTED), runs)
    decode_ms, decoded = median_ms(lambda: decode_manifest(body), runs)
    assert decoded == m, "round trip is not exact"
    nxt = sample_changes(m, DELTA_CHANGES)
    now = nxt.header.issued_at_ms + 1
    delta = diff(m, nxt)
    delta_env = sign_envelope(encode_delta(delta), KEY_ID, SEED)
    diff_ms, _ = median_ms(lambda: diff(m, nxt), runs)
    apply_ms, applied = median_ms(lambda: apply_delta(m, delta, now), runs)
    assert applied == nxt, "delta apply is not exact"
    full_ms, _ = median_ms(lambda: verify_and_apply(delta_env, "delta", TRUSTED, m, now), runs)
    k = f"{n // 1000}k"
    return {
        f"build_{k}_ms": build_ms,
        f"sign_{k}_ms": sign_ms,
        f"build_sign_{k}_ms": both_ms,
        f"bytes_{k}": len(envelope),
        f"bytes_per_ticket_{k}": len(envelope) / n,
        f"verify_{k}_ms": verify_ms,
        f"decode_{k}_ms": decode_ms,
        f"diff_{k}_ms": diff_ms,
        f"delta_apply_{k}_ms": apply_ms,
        f"delta_verify_apply_{k}_ms": full_ms,
        f"delta_bytes_{k}": len(delta_env),
    }


def size_only(n: int, named_share: float) -> float:
    m = sample_manifest(n, named_share=named_share)
    return len(sign_envelope(encode_manifest(m), KEY_ID, SEED)) / n


def levels(n: int) -> dict[str, float]:
    """zlib level chosen by measurement: size and build time for 1, 6 (chosen) and 9."""
    m = sample_manifest(n, named_share=NAMED_SHARE)
    out, chosen = {}, codec.COMPRESS_LEVEL
    try:
        for level in (1, 6, 9):
            codec.COMPRESS_LEVEL = level
            ms, body = median_ms(lambda: encode_manifest(m), 1)
            out[f"level{level}_build_100k_ms"] = ms
            out[f"level{level}_bytes_per_ticket_100k"] = len(body) / n
    finally:
        codec.COMPRESS_LEVEL = chosen
    return out


def main() -> None:
    figures: dict[str, float] = {"named_share": NAMED_SHARE, "zlib_level": codec.COMPRESS_LEVEL}
    figures |= measure(10_000, runs=5)
    figures |= measure(100_000, runs=3)
    figures["bytes_per_ticket_100k_no_names"] = size_only(100_000, 0.0)
    figures["bytes_per_ticket_100k_all_named"] = size_only(100_000, 1.0)
    figures |= levels(100_000)
    f = figures

    def row(name: str, value: float, unit: str, target: str = "", ok: bool | None = None) -> None:
        mark = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<46}{value:>12.1f} {unit:<8}{target:<16}{mark}")

    print(f"manifest bench: median of 5 (10k) / 3 (100k) runs; zlib level {codec.COMPRESS_LEVEL}")
    print(f"{NAMED_SHARE:.0%} of tickets carry a sealed holder name unless noted\n")
    print(f"{'figure':<46}{'value':>12} {'unit':<8}{'target':<16}")
    for k in ("10k", "100k"):
        row(f"build (encode) {k}", f[f"build_{k}_ms"], "ms")
        row(f"sign {k}", f[f"sign_{k}_ms"], "ms")
        big = k == "100k"
        bs = f[f"build_sign_{k}_ms"]
        row(f"build + sign {k}", bs, "ms", "< 1500" if big else "", bs < 1500 if big else None)
        row(f"envelope size {k}", f[f"bytes_{k}"], "bytes")
        bpt = f[f"bytes_per_ticket_{k}"]
        row(f"bytes per ticket {k}", bpt, "B", "<= 25" if big else "", bpt <= 25 if big else None)
        row(f"verify (open_envelope) {k}", f[f"verify_{k}_ms"], "ms")
        row(f"decode {k}", f[f"decode_{k}_ms"], "ms")
        row(f"diff {DELTA_CHANGES} changes {k}", f[f"diff_{k}_ms"], "ms")
        row(f"delta apply {DELTA_CHANGES} changes {k}", f[f"delta_apply_{k}_ms"], "ms")
        row(f"delta verify+decode+apply {k}", f[f"delta_verify_apply_{k}_ms"], "ms")
        row(f"delta envelope {DELTA_CHANGES} changes {k}", f[f"delta_bytes_{k}"], "bytes")
    row("bytes per ticket 100k, no names", f["bytes_per_ticket_100k_no_names"], "B")
    row("bytes per ticket 100k, ALL named", f["bytes_per_ticket_100k_all_named"], "B", "(info)")
    for level in (1, 6, 9):
        row(f"zlib level {level}: build 100k", f[f"level{level}_build_100k_ms"], "ms")
        row(f"zlib level {level}: bytes per ticket 100k", f[f"level{level}_bytes_per_ticket_100k"],
            "B")  # fmt: skip
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
