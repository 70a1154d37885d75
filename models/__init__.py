"""Tables of the `scheduler` schema, migrations, and the pure domain code (no I/O)."""
