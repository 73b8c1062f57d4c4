"""The search loop, its I/O-free schedule, and replay of the best architectures."""
