"""The search loop, its I/O-free schedule, the pool of envs its children train in, and replay of the best."""
