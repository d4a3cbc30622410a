"""Print a sign-in link for a user: one-time with a TTL, or long-lived until revoked."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from signalserver.accounts import magic_link_url
from signalserver.models import MagicLink


class Command(BaseCommand):
    help = "Print a magic sign-in link for USERNAME (set PUBLIC_BASE_URL for the public address)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--ttl", type=int, help="Seconds the one-time link stays valid (at least 60)")
        parser.add_argument("--permanent", action="store_true", help="Reusable until revoked in the admin")

    def handle(self, *args: Any, username: str, ttl: int | None, permanent: bool, **options: Any) -> None:
        if ttl is not None and permanent:
            raise CommandError("--ttl and --permanent exclude each other")
        if ttl is not None and ttl < 60:
            raise CommandError("--ttl must be at least 60 seconds")
        user = get_user_model()._default_manager.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r} (create one with createsuperuser)")
        if not user.is_active:
            raise CommandError(f"User {username!r} is disabled")
        link, token = MagicLink.issue(user, ttl_seconds=ttl, permanent=permanent, created_by="cli")
        self.stdout.write(magic_link_url(token))
        until = f"until {link.expires_at:%Y-%m-%d %H:%M:%S %Z}, once" if link.expires_at else "until revoked"
        self.stderr.write(f"{link.kind.capitalize()} link #{link.pk} for {user}, valid {until}.")
