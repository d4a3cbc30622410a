"""Signing in: password (throttled), magic links (confirm page, then POST), API tokens for machines."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from signalserver.models import ApiToken, LinkRefused, LoginFailure, MagicLink

logger = logging.getLogger(__name__)

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Refused links: malformed is the caller's error, unknown is not found, the rest are gone.
REFUSAL_STATUS = {"malformed": 400, "unknown": 404}


def client_ip(request: HttpRequest) -> str | None:
    forwarded = request.headers.get("X-Forwarded-For", "") if settings.TRUST_X_FORWARDED_FOR else ""
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    ip = hops[-1] if hops else request.META.get("REMOTE_ADDR")
    try:
        return forms.GenericIPAddressField().clean(ip) or None
    except forms.ValidationError:
        return None


def safe_next(request: HttpRequest, value: str | None) -> str:
    """`next` only to a path of this site; anything else goes to the dashboard."""
    if value and value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts=None):
        return value
    return reverse(settings.LOGIN_REDIRECT_URL)


def magic_link_url(token: str, request: HttpRequest | None = None) -> str:
    path = reverse("magic-link", args=[token])
    if request is not None:
        return request.build_absolute_uri(path)
    base = settings.PUBLIC_BASE_URL or f"http://localhost:{settings.PORT}"
    return base + path


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next")
    if request.user.is_authenticated and request.method == "GET":
        return HttpResponseRedirect(safe_next(request, next_url))
    form = AuthenticationForm(request, data=request.POST if request.method == "POST" else None)
    status, wait = 200, 0
    if request.method == "POST":
        ip, username = client_ip(request), request.POST.get("username", "")
        wait = LoginFailure.wait_seconds(ip, username)
        if wait:
            logger.warning("LOGIN: throttled username=%r ip=%s for %d s", username[:150], ip, wait)
            status = 429
        elif form.is_valid():
            auth.login(request, form.get_user())
            logger.info("LOGIN: %s signed in with a password from %s", form.get_user(), ip)
            return HttpResponseRedirect(safe_next(request, next_url))
        else:
            LoginFailure.record(ip, username)
            logger.info("LOGIN: failed password login username=%r ip=%s", username[:150], ip)
    context = {"form": form, "next": next_url or "", "wait_minutes": -(-wait // 60), "throttled": bool(wait)}
    return render(request, "accounts/login.html", context, status=status)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth.logout(request)
    return HttpResponseRedirect(reverse(settings.LOGOUT_REDIRECT_URL))


def _refused(request: HttpRequest, refusal: LinkRefused) -> HttpResponse:
    link_id = refusal.link.pk if refusal.link else "-"
    logger.info("MAGIC_LINK: refused (%s) link=%s ip=%s", refusal.state, link_id, client_ip(request))
    context = {"state": refusal.state, "message": refusal.message}
    return render(request, "accounts/magic_refused.html", context, status=REFUSAL_STATUS.get(refusal.state, 410))


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def magic_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirm page and changes nothing (mail scanners open links); POST signs in."""
    next_url = request.POST.get("next") or request.GET.get("next")
    try:
        link = MagicLink.redeem(token) if request.method == "POST" else MagicLink.lookup(token)
    except LinkRefused as refusal:
        return _refused(request, refusal)
    if request.method == "GET":
        return render(request, "accounts/magic_confirm.html", {"link": link, "next": next_url or ""})
    auth.login(request, link.user, backend=MODEL_BACKEND)
    logger.info("MAGIC_LINK: %s signed in with %s link=%s", link.user, link.kind, link.pk)
    return HttpResponseRedirect(safe_next(request, next_url))


def bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def staff_or_token(scope: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A logged-in staff operator (with CSRF), or an API token with `scope` (no cookies, no CSRF)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            token = bearer_token(request)
            if token:
                row = ApiToken.authenticate(token, scope)
                if row is None:
                    logger.warning("API: refused token for scope %s from %s", scope, client_ip(request))
                    return JsonResponse({"error": f"invalid token, or no {scope} scope"}, status=401)
                request.api_token = row  # type: ignore[attr-defined]
                return view(request, *args, **kwargs)
            if not (request.user.is_authenticated and request.user.is_staff):
                return JsonResponse({"error": "sign in as staff, or send Authorization: Bearer <token>"}, status=401)
            refused = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, view, args, kwargs)
            return refused or view(request, *args, **kwargs)

        return wrapper

    return decorator
