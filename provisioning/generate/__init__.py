"""What a run writes: scales (data), value pools, pure row builders of (seed, index),
the dataset and its fingerprint, passwords, and the binding of live columns to the
builders' fields."""
