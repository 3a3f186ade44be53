"""``provision demo``: the whole cycle on an embedded PostgreSQL (up, the reference platform,
a bounded Locust run gated on the guide's metrics, down).

It composes the three packages the toolkit ships (provisioning, the reference platform and the
scenarios); none of them imports it.
"""
