"""The API documentation page: Swagger UI served from this server, no CDN."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files():
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assets += re.findall(r'"(/static/[^"]+)"', html)
    assert any("swagger-ui-bundle.js" in a for a in assets), assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
    assert not re.search(r"https?://|//cdn", html)  # nothing from elsewhere
    for asset in {a for a in assets if a.startswith("/static/")}:
        response = Client().get(asset)
        assert response.status_code == 200, asset
    assert '"/api/schema/"' in html  # the schema it shows is ours


def test_the_footer_links_the_docs_beside_the_schema():
    html = Client().get("/accounts/login/").content.decode()
    assert 'href="/api/docs/">API docs</a> · <a href="/api/schema/">OpenAPI schema</a>' in html
