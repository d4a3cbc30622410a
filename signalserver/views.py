from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from signalserver.health import run_checks


@never_cache
@require_http_methods(["GET", "HEAD"])
def health(request: HttpRequest) -> HttpResponse:
    ok, body = run_checks()
    return JsonResponse(body, status=200 if ok else 503)


@never_cache
@require_http_methods(["GET", "HEAD"])
def health_live(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_http_methods(["GET", "HEAD"])
def ping(request: HttpRequest) -> HttpResponse:
    missing = settings.MISSING_REQUIRED_ENV
    return JsonResponse(
        {
            "status": "pong",
            "timestamp_utc": dt.datetime.now(dt.UTC).isoformat(),
            "required_vars_present": not missing,
            "missing_vars": missing,
        }
    )
