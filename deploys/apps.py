from __future__ import annotations

from django.apps import AppConfig


class DeploysConfig(AppConfig):
    name = "deploys"
    verbose_name = "Deploys"

    def ready(self) -> None:
        from deploys import checks  # noqa: F401  (registers system checks)
        from deploys.secrets import install_log_filter

        install_log_filter()
