"""Every route of the app, pages and API. Each handler names its permission
(the ``guards``) next to it; ``tests/web/test_cross_tenant.py`` enumerates
this table and fails on a route it does not cover.
"""

from __future__ import annotations


def page_routes() -> list:
    from salesinbox.web.routes import (
        mail_assets,
        pages_accounts,
        pages_auth,
        pages_compose,
        pages_crm,
        pages_inbox,
        pages_labels,
        pages_links,
        pages_oauth,
        pages_settings,
    )

    return [
        *pages_auth.ROUTES,
        *pages_crm.ROUTES,
        *pages_settings.ROUTES,
        *pages_accounts.ROUTES,
        *pages_oauth.ROUTES,
        *pages_inbox.ROUTES,
        *pages_links.ROUTES,
        *pages_labels.ROUTES,
        *pages_compose.ROUTES,
        *mail_assets.ROUTES,
    ]


def api_routes() -> list:
    from salesinbox.web.routes import api

    return [api.api_router()]
