"""The probes: one per file, each reading one link of the stack into model records.

`collect.collect_inventory` runs them all. This package file stays empty so that the CLI can
import `facts.interpreter` (stdlib only) before anything heavy.
"""
