"""Configuration: [tool.syscall-lint] in the nearest pyproject.toml, or --config FILE.

Unknown keys and bad values are errors that name the file and the key (exit 2).
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from syscall_lint import catalog
from syscall_lint._toml import toml
from syscall_lint.inputs import InputRefused, read_regular

DEFAULT_EXCLUDE = (
    ".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".tox", ".nox", ".eggs", "*.egg-info",
    "build", "dist", "__pycache__", "node_modules", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".syscall_lint_cache", "site-packages",
)
LIST_KEYS = ("select", "extend-select", "ignore", "exclude", "extend-exclude")
BOOL_KEYS = ("root", "strict", "force-exclude", "follow-imports")
KNOWN_KEYS = set(LIST_KEYS) | set(BOOL_KEYS) | {"per-file-ignores", "src"}
OPTION_MAXIMUM = 1e12  # thresholds are counts, sizes and rates; past this a value is a typo (or inf/nan)


class ConfigError(Exception):
    """A configuration problem; the message names the file and the key."""


@dataclass
class Settings:
    select: frozenset
    ignore: frozenset = frozenset()
    per_file_ignores: tuple = ()
    exclude: tuple = DEFAULT_EXCLUDE
    options: dict = field(default_factory=dict)  # code -> {option: value}
    base: Path = Path(".")
    origin: str = "<defaults>"
    strict: bool = False  # parse every file, so syntax errors surface even where no rule could match
    force_exclude: bool = False  # apply exclude to paths named on the command line too (pre-commit)
    src: tuple = ()  # extra folders the project's absolute imports resolve under (absolute paths)
    follow_imports: bool = True  # summarise the project modules a file imports (python/project.py)

    def enabled(self, code: str, path: str | None = None) -> bool:
        if code not in self.select or _matches_codes(code, self.ignore):
            return False
        if path is not None:
            for pattern, codes in self.per_file_ignores:
                if _matches_codes(code, codes) and self._path_matches(path, pattern):
                    return False
        return True

    def enabled_codes(self, path: str | None = None) -> set:
        if path is not None and self.per_file_ignores:
            return {code for code in self.select if self.enabled(code, path)}
        # the same for every path: asked once per file of an audit of thousands
        key = (self.select, self.ignore)
        found = _ENABLED.get(key)
        if found is None:
            found = _ENABLED[key] = frozenset(code for code in self.select if self.enabled(code))
        return set(found)  # the caller's own copy

    def is_excluded(self, path, names_only: bool = False) -> bool:
        name_rx, path_rx = self._compiled("exclude", self.exclude)
        path = str(path)
        if name_rx.match(os.path.basename(path)):
            return True
        return not names_only and bool(path_rx.match(self._relative(path)))

    def excluder(self, arg: str):
        """The exclude test for files below a command-line argument. A path named on the command
        line is analysed even when excluded (below it only name patterns such as .git apply), unless
        force-exclude is on: pre-commit names every changed file, vendor/ included."""
        if self.force_exclude and self.is_excluded(arg):
            return lambda path: True
        names_only = self.is_excluded(arg)
        return lambda path: self.is_excluded(path, names_only)

    def _path_matches(self, path: str, pattern: str) -> bool:
        name_rx, path_rx = self._compiled(pattern, (pattern,))
        return bool(name_rx.match(os.path.basename(path)) or path_rx.match(self._relative(path)))

    def _relative(self, path: str) -> str:
        base = self.__dict__.get("_base_abs")
        if base is None:
            base = self.__dict__["_base_abs"] = os.path.realpath(str(self.base))
        full = os.path.abspath(path)
        if full == base or full.startswith(base + os.sep):
            return full[len(base) + 1:]
        try:
            return os.path.relpath(full, base)
        except ValueError:
            return path

    def _compiled(self, key, patterns):
        """(regex for a file or folder name, regex for a path relative to the config's folder)."""
        cache = self.__dict__.setdefault("_regex_cache", {})
        hit = cache.get(key)
        if hit is None:
            import re

            names = "|".join(fnmatch.translate(p) for p in patterns) or "(?!)"
            paths = "|".join(fnmatch.translate(q) for p in patterns for q in (p, p.rstrip("/") + "/*")) or "(?!)"
            hit = cache[key] = (re.compile(names), re.compile(paths))
        return hit

    def fingerprint(self) -> str:
        return json.dumps(
            [sorted(self.select), sorted(self.ignore), self.per_file_ignores, self.options, self.src,
             self.follow_imports],
            sort_keys=True, default=str,
        )


_ENABLED = {}  # (select, ignore) → the codes they enable (a handful of settings per run)


def _matches_codes(code: str, selectors) -> bool:
    return any(code.startswith(sel) for sel in selectors)


def expand(selectors, origin: str, key: str) -> set:
    """Turn codes, prefixes ("SCL1", "SCL") or rule names into rule codes."""
    cat = catalog.load()
    out = set()
    for sel in selectors:
        if not isinstance(sel, str) or not sel.strip():
            raise ConfigError(f"{origin}: {key}: expected rule codes, got {sel!r}")
        rule = cat.resolve(sel)
        if rule:
            out.add(rule.code)
            continue
        matched = {code for code in cat.rules if code.startswith(sel.strip().upper())}
        if not matched:
            raise ConfigError(f"{origin}: {key}: unknown rule code or prefix {sel!r}")
        # A bare prefix ("SCL") selects the default rules only; opt-in rules need their own code.
        out |= {c for c in matched if cat.rules[c].default or sel.strip().upper() == c}
    return out


def parse_table(table: dict, origin: str, base: Path) -> Settings:
    cat = catalog.load()
    options = {code: rule.option_defaults() for code, rule in cat.rules.items()}
    for key, value in table.items():
        rule = cat.resolve(key)
        if rule is not None and not isinstance(value, dict):
            raise ConfigError(f"{origin}: {key}: expected a table of options for {rule.code}, got {_kind(value)}")
        if rule is not None:
            for opt, optval in value.items():
                spec = rule.options.get(opt)
                if spec is None:
                    raise ConfigError(f"{origin}: [{key}]: unknown option {opt!r} for {rule.code}")
                expected = {"int": int, "float": (int, float), "bool": bool, "str": str}[spec["type"]]
                if not isinstance(optval, expected) or isinstance(optval, bool) != (spec["type"] == "bool"):
                    raise ConfigError(f"{origin}: [{key}] {opt}: expected {spec['type']}, got {optval!r}")
                if spec["type"] in ("int", "float") and not 0 <= optval <= OPTION_MAXIMUM:
                    raise ConfigError(f"{origin}: [{key}] {opt}: must be a number from 0 to {OPTION_MAXIMUM:g}")
                options[rule.code][opt] = optval
        elif key not in KNOWN_KEYS:
            raise ConfigError(f"{origin}: unknown key {key!r}")
        elif key in LIST_KEYS and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{origin}: {key}: expected a list of strings")
    for key in BOOL_KEYS:
        if not isinstance(table.get(key, False), bool):
            raise ConfigError(f"{origin}: {key}: expected true or false")
    select = expand(table["select"], origin, "select") if "select" in table else cat.default_codes()
    select |= expand(table.get("extend-select", []), origin, "extend-select")
    ignore = expand(table.get("ignore", []), origin, "ignore")
    pfi = table.get("per-file-ignores", {})
    if not isinstance(pfi, dict):
        raise ConfigError(f"{origin}: per-file-ignores: expected a table of glob = [codes]")
    per_file = []
    for pattern, codes in pfi.items():
        if not isinstance(codes, list):
            raise ConfigError(f"{origin}: per-file-ignores.{pattern}: expected a list of codes")
        per_file.append((pattern, tuple(sorted(expand(codes, origin, f"per-file-ignores.{pattern}")))))
    src = table.get("src", [])
    if not (isinstance(src, list) and all(isinstance(v, str) and v.strip() for v in src)):
        raise ConfigError(f"{origin}: src: expected a list of folder names")
    exclude = tuple(table["exclude"]) if "exclude" in table else DEFAULT_EXCLUDE
    exclude += tuple(table.get("extend-exclude", ()))
    return Settings(frozenset(select), frozenset(ignore), tuple(per_file), exclude, options, base, origin,
                    strict=table.get("strict", False), force_exclude=table.get("force-exclude", False),
                    src=tuple(os.path.abspath(os.path.join(str(base), v)) for v in src),
                    follow_imports=table.get("follow-imports", True))


# A configuration file is a few hundred bytes; anything past this is not one (or is /dev/zero).
CONFIG_SIZE_LIMIT = 4 * 1024 * 1024


def read_file(path: Path) -> tuple[dict, bool]:
    """Return (the syscall-lint table, whether this file declares one)."""
    try:
        raw = read_regular(str(path), CONFIG_SIZE_LIMIT)
    except InputRefused as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = toml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    tool = data.get("tool")
    if tool is not None and not isinstance(tool, dict):
        if path.name == "pyproject.toml":
            return {}, False  # someone else's `tool` key; this file says nothing about us
        raise ConfigError(f"{path}: tool: expected a table, got {_kind(tool)}")
    table = (tool or {}).get("syscall-lint")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: tool.syscall-lint: expected a table, got {_kind(table)}")
    if path.name == "pyproject.toml":
        return (table or {}), table is not None
    return (table if table is not None else data), True


def _kind(value) -> str:
    names = {str: "a string", list: "an array", bool: "a boolean", int: "an integer", float: "a float"}
    return names.get(type(value), type(value).__name__)


class Resolver:
    """Finds the settings for each file; caches per directory."""

    def __init__(self, config_file: str | None = None, overrides: dict | None = None):
        self.overrides = overrides or {}
        # Command-line selections are checked here, so an unknown code is blamed on the flag that
        # named it, not on whichever configuration file happens to be found later.
        for key, value in self.overrides.items():
            if key in LIST_KEYS and value is not None:
                expand(value, "command line", f"--{key}")
        self._by_dir: dict[Path, Settings] = {}
        self._fixed = None
        if config_file:
            path = Path(config_file)
            table, _ = read_file(path)
            self._fixed = self._finish(table, str(path), path.resolve().parent)

    def _finish(self, table: dict, origin: str, base: Path) -> Settings:
        table = dict(table)
        for key in ("select", "extend-select", "ignore"):
            if self.overrides.get(key) is not None:
                if key == "select":
                    # as in ruff, a selection on the command line starts afresh: codes named there
                    # are reported even if the file's select or ignore left them out
                    table["select"] = self.overrides[key]
                    table.pop("extend-select", None)
                    table.pop("ignore", None)
                else:
                    table[key] = list(table.get(key, [])) + list(self.overrides[key])
        for key in BOOL_KEYS:
            if self.overrides.get(key):
                table[key] = True
        return parse_table(table, origin, base)

    def for_path(self, path: Path) -> Settings:
        if self._fixed is not None:
            return self._fixed
        start = path.resolve()
        directory = start if start.is_dir() else start.parent
        return self._for_dir(directory)

    def _for_dir(self, directory: Path) -> Settings:
        cached = self._by_dir.get(directory)
        if cached is not None:
            return cached
        candidate = directory / "pyproject.toml"
        settings = None
        if candidate.is_file():
            table, declared = read_file(candidate)
            if declared:
                settings = self._finish(table, str(candidate), directory)
        if settings is None:
            parent = directory.parent
            if parent == directory:
                settings = self._finish({}, "<defaults>", Path.cwd())
            else:
                settings = self._for_dir(parent)
        self._by_dir[directory] = settings
        return settings
