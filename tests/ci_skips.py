"""In CI (``CI=true``) a skipped test fails the run: a missing browser, node, npm or espeak-ng must never pass quietly.

A skip is a test that did not run. Locally it stays a skip (listed by ``-ra``); with ``CI`` set to true/1/yes the
session ends with exit status 1 and a summary that names every skipped test and why. Loaded by tests/conftest.py
(``register``), or on its own with ``-p tests.ci_skips``.
"""

from __future__ import annotations

import os

import pytest

PLUGIN_NAME = "ci-skips"


def in_ci(env: dict[str, str] | None = None) -> bool:
    """CI=true (GitHub Actions, GitLab, most runners), CI=1 or CI=yes."""
    return (env if env is not None else os.environ).get("CI", "").strip().lower() in ("true", "1", "yes")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipsFailInCI:
    """Collects every skip (test or whole module); in CI turns a passing exit status into a failing one."""

    def __init__(self) -> None:
        self.skips: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # an expected failure is not a test left unrun
            self.skips.append((report.nodeid, _reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)  # a module skipped as a whole: pytest.skip(allow_module_level=True), importorskip

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if in_ci() and self.skips and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not (in_ci() and self.skips):
            return
        terminalreporter.section("CI=true: a skipped test fails the run", sep="=", red=True, bold=True)
        for nodeid, reason in self.skips:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)
        terminalreporter.line(f"{len(self.skips)} skipped: install what they name (tools/system-deps.sh) "
                              "or fix the test", red=True)


def register(config: pytest.Config) -> None:
    """Once per session, whichever way the module was loaded."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(SkipsFailInCI(), PLUGIN_NAME)


def pytest_configure(config: pytest.Config) -> None:
    register(config)
