"""Mutation score per file from mutmut's results (`make mutation` prints it after the run).

mutmut keeps one `mutants/<path>.py.meta` JSON per mutated file, with the exit code of the
test run for each mutant. This reads them (no mutmut import: it runs in a plain venv too) and
prints a table, then, as the last line, one JSON object with the figures the README quotes:
`admission_killed_pct` (manifests/admission.py), `parse_native_killed_pct` (protocol/parse.py
and protocol/native.py together) and `protocol_killed_pct` (all of protocol/).

Killed means a test failed (or the run timed out) with the mutant in place. The score is
killed / (total - not yet checked): a mutant no selected test reaches counts against it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

# mutmut 3.8.1's mutmut/stats.py: exit code -> status (anything else is "suspicious")
STATUS_BY_EXIT_CODE: dict[int | None, str] = {
    1: "killed",
    3: "killed",  # pytest's internal error
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    None: "not checked",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}
DETECTED = ("killed", "timeout", "type check", "segfault")
COLUMNS = ("killed", "timeout", "survived", "no tests", "not checked")
GROUPS: dict[str, tuple[str, ...]] = {
    "admission_killed_pct": ("manifests/admission.py",),
    "parse_native_killed_pct": ("protocol/parse.py", "protocol/native.py"),
    "protocol_killed_pct": ("protocol/",),
}


def status(exit_code: int | None) -> str:
    return STATUS_BY_EXIT_CODE.get(exit_code, "suspicious")


def load(mutants: Path) -> dict[str, Counter[str]]:
    """Source path -> count of mutants by status, for every file mutmut mutated."""
    counts: dict[str, Counter[str]] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue  # a file with nothing to mutate
        source = meta.relative_to(mutants).as_posix().removesuffix(".meta")
        counts[source] = Counter(status(code) for code in codes.values())
    return counts


def killed_total(counts: Iterable[Counter[str]]) -> tuple[int, int]:
    killed = total = 0
    for c in counts:
        killed += sum(c[s] for s in DETECTED)
        total += sum(c.values()) - c["not checked"]
    return killed, total


def pct(killed: int, total: int) -> float | None:
    return round(100 * killed / total, 1) if total else None


def figures(counts: Mapping[str, Counter[str]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, prefixes in GROUPS.items():
        chosen = [c for path, c in counts.items() if path.startswith(prefixes)]
        killed, total = killed_total(chosen)
        out[name] = pct(killed, total)
        out[name.replace("_pct", "")] = f"{killed}/{total}"
    return out


def table(counts: Mapping[str, Counter[str]]) -> list[str]:
    """One row per file; `other` is suspicious, skipped, interrupted, segfault or type check."""
    head = f"{'file':<28}" + "".join(f"{c:>12}" for c in (*COLUMNS, "other")) + f"{'score':>17}"
    lines = [head, "-" * len(head)]
    for path, c in counts.items():
        other = sum(n for s, n in c.items() if s not in COLUMNS)
        killed, total = killed_total([c])
        score = f"{killed}/{total} {pct(killed, total) or 0:5.1f}%" if total else "-"
        cells = "".join(f"{n:>12}" for n in (*(c[s] for s in COLUMNS), other))
        lines.append(f"{path:<28}{cells}{score:>17}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's work dir")
    args = ap.parse_args(argv)
    counts = load(args.mutants)
    if not counts:
        print(
            f"no mutmut results under {args.mutants}/: run `make mutation` first", file=sys.stderr
        )
        return 1
    print("\n".join(table(counts)))
    print(json.dumps(figures(counts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
