"""Fixtures shared by the test modules (a module may still define its own of the same name)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import pytest

from tests.hub_fixtures import Hub, start_hub, stop_hub
from tests.live_hub import live  # noqa: F401  (the restartable hub, a fixture)
from tests.pretix_server import PretixServer, missing_pretix

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

    from tests.rabbitmq_node import RabbitNode
    from tests.tickettoken_db import TicketTokenDb


class _Server(Protocol):
    def start(self) -> None: ...


S = TypeVar("S", bound=_Server)


def _for_the_session(
    missing: Callable[[], str | None], make: Callable[[], S], end: Callable[[S], None]
) -> Iterator[S]:
    """A real server for the session's tests, ended (`end`) when the session is. Where it
    cannot run, `missing` says why and the fixture fails saying so: a skip would hide that
    nothing was tested."""
    problem = missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    server = make()
    try:
        server.start()
        yield server
    finally:
        end(server)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """The real hub on 127.0.0.1 over a real SQLite file, two tenants (a, b) with tokens."""
    started, runner = await start_hub(tmp_path, expiry_interval_s=None)
    yield started
    await stop_hub(started, runner)


@pytest.fixture(scope="session")
def pretix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PretixServer]:
    """One real pretix for the session (tests/pretix_server.py); tests make their own events.
    Without `make pretix` it fails, saying so: a skip would hide that nothing was tested."""
    yield from _for_the_session(
        missing_pretix, lambda: PretixServer(tmp_path_factory.mktemp("pretix")), PretixServer.stop
    )


@pytest.fixture(scope="session")
def tickettoken_db() -> Iterator[TicketTokenDb]:
    """TicketToken's PostgreSQL for the session (tests/tickettoken_db.py); tests make their own
    tenants. A test that stops it starts it again. Without `make tickettoken-deps` it fails,
    saying so."""
    from tests.tickettoken_db import TicketTokenDb, missing_postgres  # psycopg: only when used

    yield from _for_the_session(missing_postgres, TicketTokenDb, TicketTokenDb.close)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitNode]:
    """A RabbitMQ node for the session (tests/rabbitmq_node.py); tests name their own queues.
    Without `make tickettoken-deps` it fails, saying so."""
    from tests.rabbitmq_node import RabbitNode, missing_rabbitmq  # aio-pika: only when used

    yield from _for_the_session(missing_rabbitmq, RabbitNode, RabbitNode.close)


# -- the venue console in a real browser (tests/browser.py) ----------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium under Playwright, for one test. Launched per test (about
    0.8 s with closing): Playwright's objects belong to the event loop that made them, and the
    tests' loops (and the `hub` fixture's) are per test. Without Chromium or Playwright it
    fails, saying what to run: a skip would hide that nothing was tested."""
    from tests.browser import launched, missing_browser

    problem = missing_browser()
    if problem:
        pytest.fail(problem, pytrace=False)
    async with launched() as started:
        yield started


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[Page]:
    """A page 390x844 (touch, mobile) in a context of its own."""
    from tests.browser import sized

    async with sized(browser, "phone") as context:
        yield await context.new_page()


@pytest.fixture
async def desktop(browser: Browser) -> AsyncIterator[Page]:
    """A page 1280x800 in a context of its own."""
    from tests.browser import sized

    async with sized(browser, "desktop") as context:
        yield await context.new_page()
