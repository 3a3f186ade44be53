"""``provision down``: what a run made (ledger, tenants, FK graph), the deletes in key order,
and what the platform made inside the run's tenants."""
