"""Runs recorded: the ledger in the target database, the listing and status of runs, and
the credentials pool format (``poolfile``) that the scenarios read."""
