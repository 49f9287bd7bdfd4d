"""Where the checkout and the test vectors are, for tests at any depth."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
