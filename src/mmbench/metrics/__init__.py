"""Per-pattern metrics and task metric factories."""
