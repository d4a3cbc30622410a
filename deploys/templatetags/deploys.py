from __future__ import annotations

from typing import Any

from django import template

from deploys.models import Deployment

register = template.Library()


@register.inclusion_tag("deploys/panel.html", takes_context=True)
def deploy_panel(context: template.Context, count: int = 5) -> dict[str, Any]:
    """The dashboard's deployments: the latest with its status, a few before it, the Deploy button."""
    recent = list(Deployment.objects.order_by("-created").defer("output")[:count])
    return {"latest": recent[0] if recent else None, "earlier": recent[1:], "user": context.get("user")}
