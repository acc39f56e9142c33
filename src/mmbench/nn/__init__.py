"""nn: see the module docstrings."""
