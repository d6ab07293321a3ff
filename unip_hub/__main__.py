"""``python -m unip_hub`` runs the ``unip`` command line."""

from unip_hub.cli import main

raise SystemExit(main())
