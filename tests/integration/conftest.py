"""pytest picks the fixtures and hooks of the harness up from here (tests/integration/outpost_testlib.py);
tests/attack and tests/fault load the same harness through their own conftest.py."""
from outpost_testlib import *  # noqa: F401,F403
from outpost_testlib import pytest_configure, pytest_runtest_makereport  # noqa: F401
