"""Camera decoder A/B: zxing-cpp against pyzbar (the decoder the gate used before), issue #11.

Both libraries read the same greyscale image, QR codes only:
- the project's perturbed frames (demo/frames.py, as bench/scanner_bench.py renders them):
  typical and harsh at 640x480, 1280x720 and 1920x1080, empty frames for the cost of nothing
  in view, and "odd" scenes: a ticket beside a structured-append or a Kanji (Shift-JIS) code;
- real QR images from other projects' test folders (tests/vectors/qr_images, see its NOTICE),
  per source; `--jsqr DIR` adds every sample of a jsQR checkout's tests/end-to-end folder.

A read counts when the expected text is among the texts read; an exception is a miss (pyzbar
raises on structured-append codes). Time is per call. The gate's own `QrDecoder` (zxing-cpp,
then OpenCV on misses) runs on the same frames as a camera stream would feed it.

Run: .venv/bin/python bench/decoder_bench.py [--quick] [--jsqr DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.frames import (
    HARSH,
    ODD_CODES,
    RESOLUTIONS,
    TYPICAL,
    render_frame,
    ticket_beside_odd,
    ticket_payload,
)
from hardware.camera import QrDecoder, zbar_qr, zxing_qr

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "qr_images"
Case = list[tuple[str | None, np.ndarray]]  # (expected text or None for no code, grey image)


@dataclass
class Tally:
    times: list[float] = field(default_factory=list)
    hits: int = 0
    with_code: int = 0
    errors: int = 0

    def add(self, other: Tally) -> None:
        self.times += other.times
        self.hits += other.hits
        self.with_code += other.with_code
        self.errors += other.errors

    @property
    def rate(self) -> float:
        return self.hits / self.with_code if self.with_code else float("nan")


def run(case: Case, decode: Callable[[np.ndarray], Sequence[str]]) -> Tally:
    tally = Tally()
    for expected, image in case:
        t0 = time.perf_counter()
        try:
            texts = decode(image)
        except Exception:
            texts = ()
            tally.errors += 1
        tally.times.append((time.perf_counter() - t0) * 1000)
        if expected is not None:
            tally.with_code += 1
            tally.hits += expected in texts or expected.strip() in [t.strip() for t in texts]
    return tally


def library(reader: Callable[[np.ndarray], list[Any]]) -> Callable[[np.ndarray], Sequence[str]]:
    return lambda image: [text for text, _ in reader(image)]


def gate_decoder() -> Callable[[np.ndarray], Sequence[str]]:
    decoder = QrDecoder()  # one per case, fed frame after frame like the camera thread
    return lambda image: decoder.decode(image).payloads


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def frame_cases(n: int) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name, size in RESOLUTIONS.items():
        for label, pert in (("typical", TYPICAL), ("harsh", HARSH)):
            cases[f"{name} {label}"] = [
                (ticket_payload(s), grey(render_frame(ticket_payload(s), size, 1000 + s, pert)))
                for s in range(n)
            ]
        cases[f"{name} empty"] = [
            (None, grey(render_frame(None, size, 1000 + s))) for s in range(n)
        ]
    for odd in ODD_CODES:
        case: Case = []
        for i in range(n):
            ticket, frame = ticket_beside_odd(odd, i, 500 + i, 700 + i)
            case.append((ticket, grey(frame)))
        cases[f"1280x720 ticket+{odd.replace('_', '-')}"] = case
    return cases


def image_cases(jsqr: Path | None) -> dict[str, Case]:
    expected: dict[str, str] = json.loads((VECTORS / "expected.json").read_text("utf-8"))
    cases: dict[str, Case] = {}
    for rel, text in sorted(expected.items()):
        source = rel.split("/")[0]
        image = cv2.imread(str(VECTORS / rel), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SystemExit(f"cannot read {rel}")
        cases.setdefault(f"images {source}", []).append((text, image))
    if jsqr is not None:
        case: Case = []
        for sample in sorted(p for p in jsqr.iterdir() if (p / "output.json").is_file()):
            out = json.loads((sample / "output.json").read_text("utf-8"))
            image = cv2.imread(str(sample / "input.png"), cv2.IMREAD_GRAYSCALE)
            if out and image is not None:  # samples jsQR itself cannot read have no truth
                case.append((out["data"], image))
        cases["images jsQR (all)"] = case
    return cases


def cell(t: Tally) -> str:
    rate = "" if t.with_code == 0 else f"{t.hits}/{t.with_code}"
    return f"{rate:>8} {statistics.median(t.times):8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer frames (smoke run)")
    parser.add_argument("--jsqr", type=Path, help="a jsQR checkout's tests/end-to-end folder")
    args = parser.parse_args()
    n = 6 if args.quick else 20
    frames, images = frame_cases(n), image_cases(args.jsqr)
    for warm in (zbar_qr, zxing_qr):  # first calls load libraries and build tables
        warm(next(iter(frames.values()))[0][1])

    totals = {key: Tally() for key in ("pyzbar", "zxing", "gate", "pyzbar_img", "zxing_img")}
    jsqr_all: dict[str, Tally] = {}
    print("Decoder A/B: reads (expected text found / images with a code), median ms per image")
    print(f"{'case':34} {'n':>4} {'pyzbar':>17} {'zxing-cpp':>17} {'gate QrDecoder':>17}")
    for name, case in {**frames, **images}.items():
        zb = run(case, library(zbar_qr))
        zx = run(case, library(zxing_qr))
        is_frame = name in frames
        gate = run(case, gate_decoder()) if is_frame else None
        if name == "images jsQR (all)":
            jsqr_all = {"pyzbar": zb, "zxing": zx}
        elif is_frame:
            totals["pyzbar"].add(zb)
            totals["zxing"].add(zx)
            totals["gate"].add(gate)  # type: ignore[arg-type]
        else:
            totals["pyzbar_img"].add(zb)
            totals["zxing_img"].add(zx)
        errors = f"  (pyzbar raised {zb.errors}x)" if zb.errors else ""
        gate_cell = cell(gate) if gate else ""
        print(f"{name:34} {len(case):4} {cell(zb)} {cell(zx)} {gate_cell:>17}{errors}")

    both = {
        lib: Tally(
            totals[lib].times + totals[f"{lib}_img"].times,
            totals[lib].hits + totals[f"{lib}_img"].hits,
            totals[lib].with_code + totals[f"{lib}_img"].with_code,
            totals[lib].errors + totals[f"{lib}_img"].errors,
        )
        for lib in ("pyzbar", "zxing")
    }
    out: dict[str, object] = {"frames_per_case": n}
    for lib in ("pyzbar", "zxing"):
        out[f"{lib}_decode_rate"] = round(both[lib].rate, 3)
        out[f"{lib}_frames_decode_rate"] = round(totals[lib].rate, 3)
        out[f"{lib}_images_decode_rate"] = round(totals[f"{lib}_img"].rate, 3)
        out[f"{lib}_ms_per_frame"] = round(statistics.fmean(totals[lib].times), 2)
        out[f"{lib}_ms_per_image"] = round(statistics.fmean(totals[f"{lib}_img"].times), 2)
        out[f"{lib}_errors"] = both[lib].errors
        if jsqr_all:
            out[f"{lib}_jsqr_all_decode_rate"] = round(jsqr_all[lib].rate, 3)
            out[f"{lib}_jsqr_all_ms_per_image"] = round(statistics.fmean(jsqr_all[lib].times), 2)
    out["gate_decode_rate"] = round(totals["gate"].rate, 3)
    out["gate_ms_per_frame"] = round(statistics.fmean(totals["gate"].times), 2)
    better = (
        out["zxing_decode_rate"] >= out["pyzbar_decode_rate"]  # type: ignore[operator]
        and out["zxing_ms_per_frame"] <= out["pyzbar_ms_per_frame"]  # type: ignore[operator]
        and out["zxing_ms_per_image"] <= out["pyzbar_ms_per_image"]  # type: ignore[operator]
    )
    out["zxing_better_on_both"] = better

    print()
    print(f"{'figure':44} {'pyzbar':>10} {'zxing-cpp':>10}   target (to adopt zxing-cpp)")
    rows = [
        ("decode rate, all inputs with a code", "decode_rate", "%", ">= pyzbar"),
        ("decode rate, project frames", "frames_decode_rate", "%", ""),
        ("decode rate, real images (committed)", "images_decode_rate", "%", ""),
        ("mean ms per frame (all project frames)", "ms_per_frame", "ms", "<= pyzbar"),
        ("mean ms per real image", "ms_per_image", "ms", "<= pyzbar"),
        ("exceptions raised", "errors", "", "0"),
    ]
    if jsqr_all:
        rows += [
            ("decode rate, all jsQR samples", "jsqr_all_decode_rate", "%", ""),
            ("mean ms per jsQR sample", "jsqr_all_ms_per_image", "ms", ""),
        ]
    for label, key, unit, target in rows:
        a, b = out[f"pyzbar_{key}"], out[f"zxing_{key}"]
        if unit == "%":
            print(f"{label:44} {a:10.1%} {b:10.1%}   {target}")
        else:
            print(f"{label:44} {a!s:>10} {b!s:>10}   {target}")
    print(
        f"gate QrDecoder (zxing-cpp + OpenCV) on the project frames: "
        f"{out['gate_decode_rate']:.1%}, {out['gate_ms_per_frame']} ms per frame (mean)"
    )
    print(f"zxing-cpp better on both: {better}")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
