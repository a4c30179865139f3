"""``python -m zmartd.config --write-docs | --check-docs``: see :mod:`zmartd.config.docs`."""

from zmartd.config.docs import main

if __name__ == "__main__":
    raise SystemExit(main())
