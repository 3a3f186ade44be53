"""The ``provision`` command line: thin typer commands over ``agentic_loadkit.provisioning.api``.

Each command parses options, builds settings, makes one ``asyncio.run`` call and maps the
toolkit's exceptions to exit codes and one line (``app.py``).  Commands import the API when
they run, so that ``provision --help`` and ``--version`` import none of it.
"""
