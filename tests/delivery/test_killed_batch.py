"""A job worker killed in the middle of a batch: nothing is lost, and only the request in
flight when it died is sent again (with the same webhook-id)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.utils import timezone

from delivery.models import Delivery, Endpoint
from delivery.outbox import plan
from tests.conftest import base_env, child_database_env, wait_until
from tests.delivery.conftest import make_email
from tests.delivery.receiver import Receiver, Reply
from tests.delivery.test_end_to_end import qcluster

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_batch_loses_nothing_and_resends_only_what_it_had_not_recorded(box, local_targets):
    from django_q.conf import Conf
    from django_q.tasks import async_task

    env = base_env(DEBUG="true", WEBHOOK_ALLOW_PRIVATE_TARGETS="true", Q_WORKERS="1", **child_database_env())
    env["DELIVERY_CLAIM_MARGIN_SECONDS"] = "1"
    with Receiver() as receiver:
        receiver.then(Reply(200), Reply(delay=30))  # the second request hangs: the worker is killed meanwhile
        Endpoint.objects.create(name="app", url=receiver.url, is_default=True, timeout_seconds=2)
        deliveries = [d for n in range(5) for d in plan(make_email(box, identity=f"<k{n}@x>"), kick=False)]
        Conf.SYNC = False  # jobs go to the broker, for the real cluster
        first = qcluster(env)
        try:
            async_task("delivery.tasks.send_due")
            wait_until(lambda: len(receiver.received) >= 2, timeout=60, message="second request in flight")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        try:
            assert Delivery.objects.filter(status="delivered").count() == 0  # the batch was not recorded yet
            claims = [d.claimed_until for d in Delivery.objects.all() if d.claimed_until]
            time.sleep(max(0.0, (max(claims) - timezone.now()).total_seconds()) + 0.5)
            second = qcluster(env)
            try:
                async_task("delivery.tasks.send_due")
                wait_until(lambda: Delivery.objects.filter(status="delivered").count() == 5, timeout=90)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=60)
        finally:
            Conf.SYNC = True
    ids = [r.headers["webhook-id"] for r in receiver.received]
    times = {d.webhook_id: ids.count(d.webhook_id) for d in deliveries}
    assert set(times.values()) <= {1, 2} and times[ids[1]] == 2  # the hung request went again, same id
    assert list(Delivery.objects.values_list("attempt_count", flat=True)) == [1] * 5
