"""The ``kgan`` command-line interface."""
