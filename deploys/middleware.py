"""Responses name the release that answered (X-Release), so a release can tell its own code's answers."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def release_of(base_dir: object) -> str:
    """'7' when the code runs from .../releases/7/, else ''."""
    parts = str(base_dir).rstrip("/").rsplit("/", 2)
    return parts[-1] if len(parts) == 3 and parts[-2] == "releases" and parts[-1].isdigit() else ""


def release_header(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    release = release_of(settings.BASE_DIR)

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if release:
            response["X-Release"] = release
        return response

    return middleware
