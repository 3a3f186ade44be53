"""``python -m agentic_loadkit.provisioning`` runs the ``provision`` CLI."""

from .cli import main

main()
