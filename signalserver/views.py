from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from delivery import http, r2
from delivery.models import StoredLink
from mail.links import provider_of
from signalserver.accounts import staff_or_token
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


class TestR2Form(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https")


@require_POST
@staff_or_token("test_r2")
def test_r2(request: HttpRequest) -> HttpResponse:
    """Offload one URL through the R2 Worker now (the deployment notes' post-deploy check).

    For a signed-in staff operator, or a caller with an API token of scope test_r2.
    """
    if not settings.R2_FETCH_ENABLED:
        return JsonResponse({"error": "R2 offload is not configured (R2_FETCH_ENABLED, _ENDPOINT, _TOKEN)"}, status=503)
    form = TestR2Form(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": form.errors.get_json_data()}, status=400)
    url = form.cleaned_data["url"]
    provider = provider_of(url)
    try:
        r2_url, filename = r2.call_worker(url, provider)
    except http.HttpError as e:
        return JsonResponse({"error": e.message}, status=502)
    StoredLink.objects.get_or_create(
        source_url=r2.normalize_url(url, provider),
        r2_url=r2_url,
        provider=provider,
        defaults={"original_filename": filename},
    )
    return JsonResponse({"r2_url": r2_url, "original_filename": filename})
