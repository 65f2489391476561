"""Builders of chat exports for tests and benchmarks: each writes a realistic export from a compact
description, streaming, so a benchmark can build a million-message export without holding it."""
