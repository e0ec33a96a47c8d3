"""``python -m tensorfleet_client`` is the ``tensorfleet`` command."""

from tensorfleet_client.cli import main

raise SystemExit(main())
