"""Shared by every test: the Chinese edition's progress (issue #23) printed at the end of a run.

``tests/test_translation.py::test_the_progress_of_the_chinese_edition`` computes the line in the
process that runs it (a pytest-xdist worker under ``make test``) and records it as a property of
its report; the main process prints it here, so it imports nothing of the course itself.
"""

_progress: list[str] = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        _progress.extend(value for name, value in report.user_properties if name == "chinese_edition")


def pytest_terminal_summary(terminalreporter):
    if _progress:
        terminalreporter.write_line(f"Chinese edition (issue #23, see i18n/README.md): {_progress[-1]}")
