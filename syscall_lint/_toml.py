"""tomllib where the standard library has it, tomli before Python 3.11."""

try:
    import tomllib as toml  # noqa: F401
except ImportError:  # pragma: no cover - Python < 3.11
    import tomli as toml  # type: ignore[no-redef]  # noqa: F401
