"""``python -m nfclease`` is the ``nfclease`` command."""

from nfclease.cli import main

raise SystemExit(main())
