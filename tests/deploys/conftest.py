from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploys.render_server import API_KEY, SERVICE, FakeRender

GITHUB_SECRET = "gh-webhook-s3cr3t-abcdef"


@pytest.fixture
def render(settings: Any) -> Iterator[FakeRender]:
    """Render's API on a local server; no deploy method configured yet."""
    with FakeRender() as fake:
        settings.RENDER_API_BASE_URL = fake.base_url
        settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # plain http on 127.0.0.1
        settings.RENDER_DEPLOY_HOOK_URL = ""
        settings.RENDER_API_KEY = settings.RENDER_SERVICE_ID = settings.RENDER_IMAGE_URL = ""
        settings.DEPLOY_CMD = []
        settings.RENDER_DEPLOY_POLL_SECONDS = 0.02
        settings.GITHUB_WEBHOOK_SECRET = GITHUB_SECRET
        yield fake


@pytest.fixture
def hook(render: FakeRender, settings: Any) -> FakeRender:
    settings.RENDER_DEPLOY_HOOK_URL = render.hook_url
    return render


@pytest.fixture
def api(render: FakeRender, settings: Any) -> FakeRender:
    settings.RENDER_API_KEY, settings.RENDER_SERVICE_ID = API_KEY, SERVICE
    return render
