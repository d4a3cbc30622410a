"""Queue a deployment (hook, else API, else local command); --wait follows it to the end."""

from __future__ import annotations

import getpass
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploys import triggers
from deploys.models import Deployment
from deploys.secrets import mask


class Command(BaseCommand):
    help = "Deploy through the Render deploy hook, else the Render API, else DEPLOY_CMD (run by a job)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--method", choices=["hook", "api", "local"], help="Use this method only.")
        parser.add_argument("--wait", action="store_true", help="Follow it to the end; exit 1 unless it succeeds.")
        parser.add_argument("--timeout", type=float, default=None, help="Seconds --wait waits (default: no limit).")

    def handle(self, *args: Any, method: str | None, wait: bool, timeout: float | None, **options: Any) -> None:
        flags = (f" --method {method}" if method else "") + (" --wait" if wait else "")
        actor = f"{getpass.getuser()}@{settings.HOSTNAME}: manage.py deploy{flags}"
        deployment = triggers.start("cli", actor, method or "")
        if deployment.status == "failed":
            raise CommandError(f"deployment #{deployment.pk}: {mask(deployment.output.strip())}")
        self.stdout.write(f"Deployment #{deployment.pk} queued.")
        if wait:
            self.follow(deployment, timeout)

    def follow(self, deployment: Deployment, timeout: float | None) -> None:
        shown, hinted = 0, False
        started = time.monotonic()
        while True:
            deployment.refresh_from_db()
            output = mask(deployment.output)
            self.stdout.write(output[shown:], ending="")
            shown = len(output)
            if deployment.is_final:
                break
            waited = time.monotonic() - started
            if deployment.status == "queued" and waited > 15 and not hinted:
                self.stderr.write("Still queued: is the job cluster (manage.py qcluster) running?")
                hinted = True
            if timeout is not None and waited > timeout:
                raise CommandError(f"deployment #{deployment.pk} is still {deployment.status} after {timeout:g} s")
            time.sleep(1)
        self.stdout.write(f"Deployment #{deployment.pk}: {deployment.get_status_display()}")
        if deployment.status != "succeeded":
            raise CommandError(f"deployment #{deployment.pk} {deployment.get_status_display().lower()}")
