"""The `leac` command line: `main` parses the arguments, runs one command and maps errors to exit statuses.

main.py holds the parser, the error mapping and `leac inspect`; compile.py, simulate.py, emit.py and chip.py
one command family each; batch.py what the many-chips and many-Programs forms print alike (docs/cli.md).
"""

from lea_compiler.cli.main import (
    EXIT_BUG,
    EXIT_DOES_NOT_FIT,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Terminated,
    build_parser,
    entry_point,
    error_report,
    main,
)

__all__ = ["EXIT_BUG", "EXIT_DOES_NOT_FIT", "EXIT_INTERRUPTED", "EXIT_INVALID_INPUT", "EXIT_OK", "EXIT_TERMINATED",
           "EXIT_USAGE", "Terminated", "build_parser", "entry_point", "error_report", "main"]
