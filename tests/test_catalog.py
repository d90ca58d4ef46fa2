"""The catalog is the single source of truth: its shape, its docs, and every example run as a test."""

import re
from pathlib import Path

import pytest

from conftest import ROOT
from syscall_lint import catalog
from syscall_lint.config import parse_table
from syscall_lint.rule_docs import table

CAT = catalog.load()
EXAMPLES = [(rule.code, i, ex) for rule in CAT.rules.values() for i, ex in enumerate(rule.examples)]


def settings_for(example):
    options = dict(example.get("options", {}))
    table_ = {}
    if "select" in options:
        table_["select"] = options.pop("select")
    if options:
        table_[example["_code"]] = options
    return parse_table(table_, "<example>", Path("."))


def findings_for(example):
    source = example["source"]
    settings = settings_for(example)
    if source == "python":
        from syscall_lint.python.analyzer import analyze

        return analyze(example["code"], "example.py", settings)
    if source == "strace":
        from syscall_lint.strace.runner import lint_text

        return lint_text(example["code"], "example.strace", settings)
    if source == "elf":
        from syscall_lint.elf.runner import audit_file

        path = ROOT / example["fixture"]
        assert path.is_file(), f"missing fixture binary {path} (run fixtures/elf/build.sh)"
        return audit_file(str(path), settings)[0]
    raise AssertionError(source)


@pytest.mark.parametrize("code,index,example", EXAMPLES, ids=[f"{c}-{i}-{e['source']}-{e['kind']}" for c, i, e in EXAMPLES])
def test_catalog_example(code, index, example):
    example = dict(example, _code=code)
    found = findings_for(example)
    if example["kind"] == "bad":
        mine = [f for f in found if f.code == code]
        assert mine, f"{code} bad example {index} produced no {code} finding"
        if "expect" in example:
            assert sorted(f.line for f in mine) == sorted(example["expect"])
    else:
        assert found == [], [f"{f.line}: {f.code} {f.message}" for f in found]


def test_every_rule_has_bad_and_good_examples_for_each_source():
    for rule in CAT.rules.values():
        for source in rule.sources:
            kinds = {ex["kind"] for ex in rule.examples if ex["source"] == source}
            assert {"bad", "good"} <= kinds, f"{rule.code} lacks examples for {source}: {kinds}"
            assert source in rule.messages, f"{rule.code} has no message for {source}"


def test_rules_are_well_formed():
    for code, rule in CAT.rules.items():
        assert re.fullmatch(r"SCL[1-9][0-9]{2}", code)
        assert re.fullmatch(r"[a-z0-9-]+", rule.name)
        for key in ("what", "why", "example", "use_instead", "references"):
            assert rule.doc.get(key), f"{code}: doc.{key} is empty"
        assert rule.branch and rule.fix and rule.tree.tree
        for message in rule.messages.values():
            assert "\n" not in message


def test_readme_rule_table_is_generated_from_the_catalog():
    readme = (ROOT / "README.md").read_text()
    assert table(CAT) in readme, "README rule table is stale: regenerate with `syscall-lint rule --format markdown`"


def test_docs_pages_are_generated_from_the_catalog():
    from syscall_lint.rule_docs import page

    for code, rule in CAT.rules.items():
        doc = ROOT / "docs" / "rules" / f"{code}.md"
        assert doc.read_text() == page(rule), f"{doc} is stale: run `python -m syscall_lint.rule_docs`"
