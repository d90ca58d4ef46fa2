"""The test suite under every Python the project supports: `nox` (or `nox -s tests-3.12`).

`.ci/run` runs these sessions for each interpreter the machine has; a missing one is skipped
(nox reports it), so a machine with only one Python still runs the suite once through the README's
command.
"""

import nox

SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]  # keep in sync with requires-python and the classifiers

nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)
