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
        if example["source"] == "elf":  # a binary's audit: exactly the codes it is the example of
            assert sorted({f.code for f in found}) == example.get("expect_codes", [code]), [f.message for f in found]
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


# --- templates: every placeholder supplied by its emitters, nothing raw on a page ----------------

PY_FIXTURES = sorted((ROOT / "fixtures" / "python").glob("*.py"))


def test_message_keys_name_one_of_the_rules_sources():
    for code, rule in CAT.rules.items():
        for key in rule.messages:
            source = key.split("-", 1)[0]
            assert source in rule.sources, f"{code}: message {key!r} is for a source the rule does not have"


@pytest.fixture
def emitted(monkeypatch):
    """Strict fields on (an extra field is an error too), and every (code, message key) emitted."""
    from syscall_lint import findings

    seen = set()
    real_make = findings.make

    def recording_make(code, source, path, *, variant="", **kw):
        seen.add((code, findings.message_key(source, variant)))
        return real_make(code, source, path, variant=variant, **kw)

    monkeypatch.setattr(findings, "STRICT_FIELDS", True)
    monkeypatch.setattr(findings, "make", recording_make)
    return seen


def test_every_template_is_filled_exactly_by_its_emitters(emitted):
    """Run every catalog example and every Python fixture with strict fields: a placeholder an
    emitter does not supply, or a field no template uses, raises TemplateFieldError."""
    from syscall_lint.python.analyzer import analyze

    for code, _, example in EXAMPLES:
        findings_for(dict(example, _code=code))
    for path in PY_FIXTURES:
        analyze(path.read_text(), str(path), settings_for({"_code": "SCL101"}))
    python_keys = {(code, key) for code, rule in CAT.rules.items() for key in rule.messages
                   if key.split("-", 1)[0] == "python"}
    assert python_keys - emitted == set(), "Python message shapes no example or fixture exercises"


def test_make_refuses_a_missing_field_always_and_an_extra_one_when_strict(monkeypatch):
    from syscall_lint import findings

    with pytest.raises(findings.TemplateFieldError, match="write_line"):
        findings.make("SCL101", "python", "a.py", call="os.replace", src="'t'")
    extra = dict(call="os.replace", src="'t'", write_line=3, colour="blue")
    assert findings.make("SCL101", "python", "a.py", **extra).message.endswith("line 3")
    monkeypatch.setattr(findings, "STRICT_FIELDS", True)
    with pytest.raises(findings.TemplateFieldError, match="colour"):
        findings.make("SCL101", "python", "a.py", **extra)
    with pytest.raises(findings.TemplateFieldError, match="python-nope"):
        findings.make("SCL101", "python", "a.py", variant="nope", call="x", src="y", write_line=1)


def _outside_code_blocks(markdown: str) -> str:
    return "\n".join(part for i, part in enumerate(markdown.split("```")) if i % 2 == 0)


@pytest.mark.parametrize("code", sorted(CAT.rules))
def test_rule_pages_show_no_raw_placeholder(code):
    from syscall_lint.rule_docs import page, readable_fix

    rule = CAT.rules[code]
    prose = _outside_code_blocks(page(rule))
    assert not re.search(r"\{[A-Za-z_]\w*\}", prose), re.findall(r".*\{[A-Za-z_]\w*\}.*", prose)
    assert not re.search(r"\{[A-Za-z_]\w*\}", readable_fix(rule))


def test_rule_page_names_the_fields_of_a_templated_fix():
    from syscall_lint.rule_docs import page

    assert "call <handle>.flush() before os.fsync(<handle>.fileno())" in page(CAT.rules["SCL106"])


# --- constants and confidence come from the catalog -------------------------------------------------

LOOP = "import os\n\ndef dump(fd, records):\n    for r in records:\n        os.write(fd, r)\n"


def test_syscall_cost_in_messages_is_the_catalog_option_and_configurable():
    from syscall_lint.python.analyzer import analyze

    default = CAT.rules["SCL201"].option_defaults()["syscall-cost-ns"]
    [finding] = analyze(LOOP, "t.py", parse_table({}, "<t>", Path(".")))
    assert f"~{default} ns" in finding.message
    tuned = parse_table({"SCL201": {"syscall-cost-ns": 90}}, "<t>", Path("."))
    [finding] = analyze(LOOP, "t.py", tuned)
    assert "~90 ns" in finding.message


def test_no_python_code_keeps_its_own_copy_of_a_catalog_number():
    for path in (ROOT / "syscall_lint" / "python").glob("*.py"):
        assert "COST_NS" not in path.read_text(), f"{path.name} defines a cost the catalog owns"


def _one_rule_catalog(tmp_path, confidence: str):
    src = ROOT / "rules"
    (tmp_path / "decision_trees.toml").write_bytes((src / "decision_trees.toml").read_bytes())
    text = (src / "SCL303.toml").read_text()
    text = re.sub(r'(?m)^confidence = .*$', lambda _: f"confidence = {confidence}", text, count=1)
    (tmp_path / "SCL303.toml").write_text(text)
    return catalog.Catalog(tmp_path).rules["SCL303"]


def test_confidence_is_per_source_when_the_catalog_says_so(tmp_path):
    rule = _one_rule_catalog(tmp_path, '{ python = "high", elf = "low" }')
    assert (rule.confidence_for("python"), rule.confidence_for("elf"), rule.confidence) == ("high", "low", "low")
    single = _one_rule_catalog(tmp_path, '"medium"')
    assert (single.confidence_for("python"), single.confidence) == ("medium", "medium")
    with pytest.raises(ValueError, match="confidence"):
        _one_rule_catalog(tmp_path, '"certain"')
