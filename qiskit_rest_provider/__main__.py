"""``python -m qiskit_rest_provider`` is the same as the ``qiskit-rest-provider`` command."""

from .cli import main

raise SystemExit(main())
