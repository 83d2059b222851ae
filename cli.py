"""The ``tfcovseg`` command, runnable from a checkout as ``python cli.py``.

The commands live in ``tfcovseg/cli.py`` (the console script points there), so an installed
wheel adds no top-level ``cli`` module to site-packages.
"""

from tfcovseg.cli import main

if __name__ == "__main__":
    main()
