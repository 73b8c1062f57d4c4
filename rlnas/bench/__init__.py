"""Benchmarks on lookup tables: tabulating a space, running strategies over seeds, and the report."""
