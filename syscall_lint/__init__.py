"""syscall-lint: a static linter for syscall anti-patterns."""

__version__ = "0.1.0"
