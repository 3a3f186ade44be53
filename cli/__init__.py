"""The ``provision`` command line: thin typer commands over ``agentic_loadkit.provisioning.api``.

``agentic_loadkit.cli.app`` is the whole command line: its ``app`` (typer) has every command
registered, and ``main`` runs it.  Each command parses options, builds settings, makes one
``asyncio.run`` call and maps the toolkit's exceptions to exit codes and one line
(``root.py``).  Commands import the API when they run, so that ``provision --help`` and
``--version`` import none of it; this package itself imports nothing, so that
``python -m agentic_loadkit.cli`` imports the commands under its Ctrl-C guard (``__main__``).
"""
