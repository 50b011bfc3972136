"""`python -m lea_compiler` runs the `leac` command line."""

from lea_compiler.cli import entry_point

entry_point()
