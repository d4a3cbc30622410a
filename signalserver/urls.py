from __future__ import annotations

from django.contrib import admin
from django.urls import path

from signalserver import views

admin.site.site_header = "signalserver"
admin.site.site_title = "signalserver"

urlpatterns = [
    path("health", views.health, name="health"),
    path("health/live", views.health_live, name="health-live"),
    path("api/ping", views.ping, name="ping"),
    path("api/test-r2", views.test_r2, name="test-r2"),
    path("admin/", admin.site.urls),
]
