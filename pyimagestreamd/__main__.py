"""`python3 -m pyimagestreamd`: run the command-line entry point."""

from pyimagestreamd.cli import main

raise SystemExit(main())
