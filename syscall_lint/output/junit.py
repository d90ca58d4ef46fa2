"""JUnit XML: one test case per finding or input error, so CI dashboards show them as failures."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from syscall_lint.output.text import location


def render(report) -> str:
    suites = ET.Element("testsuites", name="syscall-lint")
    suite = ET.SubElement(suites, "testsuite", name="syscall-lint",
                          tests=str(max(1, len(report.findings) + len(report.errors))),
                          failures=str(len(report.findings)), errors=str(len(report.errors)))
    for f in report.findings:
        case = ET.SubElement(suite, "testcase", classname=f.path, name=f"{f.code} {location(f)}")
        failure = ET.SubElement(case, "failure", message=f.message, type=f.code)
        failure.text = f"{location(f)}: {f.code} {f.message}\nfix: {f.fix}\n{f.url}"
    for e in report.errors:
        case = ET.SubElement(suite, "testcase", classname=e.path, name="input")
        ET.SubElement(case, "error", message=e.message, type="input-error").text = f"{e.path}: {e.message}"
    if not report.findings and not report.errors:
        ET.SubElement(suite, "testcase", classname="syscall-lint", name="no findings")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
