"""The integration harness (tests/integration/outpost_testlib.py): real binaries on loopback."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from outpost_testlib import *  # noqa: E402,F401,F403
from outpost_testlib import pytest_configure, pytest_runtest_makereport  # noqa: E402,F401
