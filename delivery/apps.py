from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"

    def ready(self) -> None:
        from delivery.bootstrap import create_first_endpoint

        post_migrate.connect(create_first_endpoint, sender=self, dispatch_uid="delivery-first-endpoint")
