"""Where a child runs: the evaluator factory, worker processes, the template and fork server, and Ray."""
