"""The venue console: pages for venue managers and box office staff, served by the hub
itself (so a venue running offline has it too), rendered on the server with jinja2, with a
little plain JS; every asset is in this package.

A page module has `routes` (an aiohttp RouteTableDef) and is listed in PAGES (and may have
`setup(app)`, called once); its handlers start with `console_user(request, permission)`
(hub/console/session.py).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from hub.console import box_office, devices, doors, events, reports, sign_in, tickets
from hub.console.render import local_time
from hub.console.session import CSRF_FIELD, ROLE_LABELS, setup_sessions

HERE = Path(__file__).parent
STATIC_PATH = "/static/console"

PAGES: list[ModuleType] = [sign_in, events, tickets, reports, doors, devices, box_office]


@jinja2.pass_context
def csrf_field(context: jinja2.runtime.Context) -> Markup:
    """The hidden input every console form carries (the session's CSRF token)."""
    token = escape(context.get("csrf_token", ""))
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">')


def setup_console(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(csrf_field=csrf_field, static=STATIC_PATH, role_labels=ROLE_LABELS)
    env.filters["local_time"] = local_time
    app.router.add_static(STATIC_PATH, HERE / "static", append_version=False)
    setup_sessions(app)
    sign_in.setup_sign_in(app)
    for page in PAGES:
        app.add_routes(page.routes)
        if hasattr(page, "setup"):  # a page with machinery of its own (the doors' live feed)
            page.setup(app)
