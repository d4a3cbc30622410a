from __future__ import annotations

from django.urls import path

from deploys import views

urlpatterns = [
    path("github/", views.github_webhook, name="deploys-github"),
]
