"""A run's records: frozen trials, the run directory and journal, its lock, durable writes, TensorBoard."""
