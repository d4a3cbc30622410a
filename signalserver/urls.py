from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from signalserver import accounts, dashboard, deployments, ingress, metrics, views

admin.site.site_header = "signalserver"
admin.site.site_title = "signalserver"

urlpatterns = [
    path("", dashboard.index, name="dashboard"),
    path("dashboard/mailboxes/<int:pk>/check", dashboard.check_mailbox, name="dashboard-check-mailbox"),
    path("dashboard/deliveries/<int:pk>/resend", dashboard.resend_delivery, name="dashboard-resend"),
    path("dashboard/deliveries/<int:pk>/send-now", dashboard.send_delivery_now, name="dashboard-send-now"),
    path("dashboard/emails/reprocess", dashboard.reprocess_emails, name="dashboard-reprocess"),
    path("dashboard/test-webhook", dashboard.send_test_webhook, name="dashboard-test-webhook"),
    path("dashboard/magic-links", dashboard.create_magic_link, name="dashboard-magic-link"),
    path("dashboard/deploy", deployments.dashboard_deploy, name="dashboard-deploy"),
    path("api/deploy_application", deployments.api_deploy, name="api-deploy"),
    path("api/deployments/<int:pk>", deployments.api_deployment, name="api-deployment"),
    path("deploys/", include("deploys.urls")),
    path("login", accounts.login, name="login"),
    path("logout", accounts.logout, name="logout"),
    path("login/magic/<str:token>", accounts.magic_link, name="magic-link"),
    path("health", views.health, name="health"),
    path("health/live", views.health_live, name="health-live"),
    path("api/ping", views.ping, name="ping"),
    path("api/test-r2", views.test_r2, name="test-r2"),
    path("api/ingress/gmail", ingress.gmail, name="ingress-gmail"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/metrics", metrics.api_metrics, name="api-metrics"),
    # The admin signs in through the same throttled form.
    path("admin/login/", accounts.login),
    path("admin/", admin.site.urls),
]
