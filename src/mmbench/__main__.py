"""``python -m mmbench`` = the ``mmbench`` console script."""

from mmbench.cli import main

if __name__ == "__main__":
    main()
