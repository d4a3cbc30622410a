"""System checks for the deploy settings (`manage.py check`, and `check --deploy`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from deploys import render


@register()
def check_deploy_hook(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.RENDER_DEPLOY_HOOK_URL and (problem := render.hook_problem()):
        return [Error(problem, id="deploys.E001")]
    return []
