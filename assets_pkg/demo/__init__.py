"""Deterministic sample-data generators and the `assets-pkg demo` runner."""
