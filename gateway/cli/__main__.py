"""``python -m gateway.cli``."""

from gateway.cli.app import main

raise SystemExit(main())
