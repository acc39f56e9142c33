"""functional: see the module docstrings."""
