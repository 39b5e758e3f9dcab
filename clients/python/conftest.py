"""Fixtures of the Python client tests: one broker and one receiver for the whole run, and a
tenant of its own for every test, so that counts and notifications stay the test's own."""

import re

import pytest

from harbor import Broker, Receiver


@pytest.fixture(scope="session")
def broker():
    b = Broker()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def tenant(request):
    """A tenant named after the test (letters, digits and '_' only)."""
    return re.sub(r"\W", "_", request.node.name)[-50:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Adds the end of the broker's log to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "broker" in item.funcargs:
        report.sections.append(("broker log (last lines)", item.funcargs["broker"].log_tail()))
