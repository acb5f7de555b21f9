"""`python -m fuzz`: the pmdswap-fuzz command line."""

from .cli import main

raise SystemExit(main())
