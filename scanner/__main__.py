"""`python -m scanner`: same as `gate-scanner`."""

from scanner.cli import main

raise SystemExit(main())
