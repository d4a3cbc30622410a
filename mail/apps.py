from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MailConfig(AppConfig):
    name = "mail"
    verbose_name = "Mail"

    def ready(self) -> None:
        from mail.bootstrap import create_first_mailbox, create_ingress_settings

        post_migrate.connect(create_first_mailbox, sender=self, dispatch_uid="mail-first-mailbox")
        post_migrate.connect(create_ingress_settings, sender=self, dispatch_uid="mail-ingress-settings")
