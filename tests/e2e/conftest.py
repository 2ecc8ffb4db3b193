"""Fixtures for end-to-end tests against the lab's real Debian hosts.

``lab`` (session scope) brings up a lab named ``shipit-test`` (3 web hosts + db1) into a temp
inventory dir and takes it down at the end of the session, even when tests fail. Under
pytest-xdist (scripts/test runs ``-n 2 --dist loadfile``) every worker is a session of its own
with a lab of its own, ``shipit-test-gw0``, ``shipit-test-gw1``: a test module runs whole on one
worker, so a module's fixtures (its deploys) are never split across labs. Its hosts
run Debian ``SHIPIT_TEST_SUITE`` (``bookworm``, the default, or ``trixie``): the same tests
run on either (scripts/test runs the deploy smoke test on trixie too). When the
lab cannot start: with ``SHIPIT_E2E_REQUIRED=1`` (CI) the test fails with the reason,
otherwise it is skipped with the reason. ``SHIPIT_TEST_KEEP_LAB=1`` leaves it running at the end
(a developer's next session then starts from the deployed hosts; CI never sets it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from shipit.errors import ShipitError
from shipit.lab import Lab, LabState
from shipit.lab.image import DEFAULT_SUITE

#: pytest-xdist's worker id ("gw0", "gw1"…), empty without xdist: each worker has a lab of its own
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
#: another name runs a second suite beside; under xdist each worker's lab is "<name>-<worker>"
LAB_NAME = os.environ.get("SHIPIT_TEST_LAB", "shipit-test") + (f"-{_WORKER}" if _WORKER else "")
SUITE = os.environ.get("SHIPIT_TEST_SUITE", DEFAULT_SUITE)  # the Debian release of the lab's hosts


def lab_unavailable(reason: str) -> None:
    """Fail (CI: SHIPIT_E2E_REQUIRED=1) or skip with ``reason``."""
    if os.environ.get("SHIPIT_E2E_REQUIRED") == "1":
        pytest.fail(f"the lab is required (SHIPIT_E2E_REQUIRED=1) but cannot start: {reason}",
                    pytrace=False)
    pytest.skip(f"lab not available: {reason}")


@pytest.fixture(scope="session")
def lab_timings() -> dict[str, float]:
    """Seconds taken by lab operations in this session (recorded, never asserted)."""
    return {}


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_timings: dict[str, float]) -> Iterator[LabState]:
    """A running lab (3 web hosts + db1 of ``SHIPIT_TEST_SUITE``) for the whole test session
    (``prune``: a leftover lab of another suite is the test's own, re-created)."""
    inv = tmp_path_factory.mktemp("inventory")
    the_lab = Lab(LAB_NAME, inv)
    started = time.monotonic()
    try:
        state = the_lab.up(hosts=3, db=True, suite=SUITE, prune=True)
    except ShipitError as e:
        _down_quietly(the_lab)
        lab_unavailable(e.message)
        return
    except Exception as e:  # noqa: BLE001 - a bug in the lab code: report it the same way, with its type
        _down_quietly(the_lab)
        lab_unavailable(f"{type(e).__name__}: {e}")
        return
    lab_timings["up"] = time.monotonic() - started
    try:
        yield state
    finally:
        if os.environ.get("SHIPIT_TEST_KEEP_LAB") != "1":
            the_lab.down()


@pytest.fixture(scope="session")
def lab_api(lab: LabState) -> Lab:
    """The :class:`Lab` object of the session lab (for idempotency checks)."""
    return Lab(LAB_NAME, lab.inventory.parent)


def _down_quietly(the_lab: Lab) -> None:
    try:
        the_lab.down()
    except Exception:  # noqa: BLE001 - taking a broken lab down is best effort
        pass


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print lab timings recorded by tests (the ``lab_timings`` dict is in the session)."""
    timings = getattr(terminalreporter.config, "_shipit_lab_timings", None)
    if timings:
        terminalreporter.write_sep("-", "lab timings (s)")
        for k, v in timings.items():
            terminalreporter.write_line(f"{k}: {v:.2f}")


@pytest.fixture(scope="session", autouse=True)
def _expose_timings(request: pytest.FixtureRequest, lab_timings: dict[str, float]) -> None:
    request.config._shipit_lab_timings = lab_timings  # type: ignore[attr-defined]
