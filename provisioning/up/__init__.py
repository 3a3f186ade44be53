"""``provision up``: settings and plan, ids, the load over parallel sessions, key checks,
ANALYZE, the credentials pool, and the undo of a failed run."""
