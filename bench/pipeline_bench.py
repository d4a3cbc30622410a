"""The whole pipeline as a user runs it: a backlog in the IMAP server to signed webhooks received.

    .venv/bin/python bench/pipeline_bench.py [--backlog 10000] [--live 20] [--live-interval 0.5]
                                             [--in-cluster] [--skip-backlog] [--profile DIR]

1. Backlog: N mixed order emails of about 8 KB (recadrage with every link provider, some
   with a PDF attachment; DESABO; neutral mail with and without a link) wait in the Dovecot
   test server. `manage.py qcluster` runs with its default settings; then the clock starts
   and `manage.py poll --once --now` records the backlog while the cluster sends it. A
   receiver in a process of its own only records each request; once the last webhook has
   arrived, every signature is verified with the reference `standardwebhooks` package, and
   duplicates and missing webhooks are counted. Prints emails/s end to end (N / time to the
   last webhook), the times of the first and last webhook and of the end of `poll --once`,
   and the peak RSS of every process.
2. Latency under load: the same backlog, read by the long-running `manage.py poll --now`
   (IDLE afterwards, as in production), while L new order emails are appended one every
   `--live-interval` seconds from the first webhook of the backlog on; prints APPEND →
   webhook received (p50/p95/max) for them.
3. With `--in-cluster`, as deployed (`manage.py serve`): no poller command; the clock
   starts as a poller session is queued as a job, as the `poll-mailboxes` schedule queues
   it, and the session runs in one of the cluster's workers next to the sending jobs.

Uses a temporary SQLite database and the ORM broker unless DATABASE_URL (and REDIS_URL) are
set, and the test server's second account (its INBOX is emptied). The `poll-mailboxes`
schedule is removed so that the cluster does not start a poller of its own: the pollers
are the commands above, or the one session queued in 3.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# delivery_bench comes first: importing it sets up Django for the benchmarks.
from delivery_bench import ROOT, TMP, child_env, stop
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.tasks import async_task, result
from mail_bench import Account, fresh_mailbox, pct, start_server

from delivery.models import Attempt, Delivery, Endpoint, SendingSchedule
from demo.receiver import Request, load_records
from demo.samples import Sample, mixed, recadrage
from mail.models import Email, Mailbox
from mail.parsing import parse_message

LIVE_BASE = 900_000  # lot numbers of the live emails, apart from the backlog's
_SUBJECT_RE = re.compile(rb'"subject": "((?:[^"\\]|\\.)*)"')


PROFILE_DIR = ""  # --profile: py-spy on the job cluster and on the poller
STARTED: list[subprocess.Popen[bytes]] = []


@atexit.register
def _stop_leftovers() -> None:
    """Whatever happened, no process of a run outlives the benchmark."""
    for proc in STARTED:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, cwd=ROOT, env=child_env(), start_new_session=True, **options)
    STARTED.append(proc)
    return proc


def start(args: list[str]) -> subprocess.Popen[bytes]:
    """A `manage.py` command in its own session; its progress lines are not shown (warnings are)."""
    command = [sys.executable, "manage.py", *args]
    if PROFILE_DIR and args[0] == "poll":
        # Every thread of the poller and of its parser process, sampled while on a CPU.
        py_spy = str(Path(sys.executable).parent / "py-spy")
        spy = [py_spy, "record", "--subprocesses", "--format", "raw", "-o", f"{PROFILE_DIR}/poller.txt"]
        command = [*spy, "--", *command]
    return spawn(command, stdout=subprocess.DEVNULL)


class ReceiverProcess:
    """`python -m demo.receiver --record`, in its own process."""

    def __init__(self, record: str) -> None:
        self.record = record
        self.proc = spawn([sys.executable, "-m", "demo.receiver", "--record", record], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().decode().split()[-1]
        port = int(self.url.split(":")[2].split("/")[0])
        self.control = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def count(self) -> int:
        self.control.request("GET", "/count")
        return int(self.control.getresponse().read())

    def finish(self) -> list[Request]:
        self.control.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        return load_records(self.record)


@dataclass
class Usage:
    """Peak RSS (VmHWM) and CPU time of process trees, sampled until they end."""

    roots: dict[str, int] = field(default_factory=dict)
    baseline: dict[int, float] = field(default_factory=dict)  # pid: CPU s before the run (the IMAP server's)
    peaks: dict[int, tuple[str, int, float]] = field(default_factory=dict)  # pid: label, KB, CPU s
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def watch(self, label: str, pid: int) -> None:
        self.roots[label] = pid

    def _run(self) -> None:
        while not self.done.wait(0.2):
            self.sample()

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        for label, root in list(self.roots.items()):
            self._walk(label, root, children, 0)

    def _walk(self, label: str, pid: int, children: dict[int, list[int]], depth: int) -> None:
        # qcluster's children are its sentinel, whose own are the workers; the poller's are its
        # parser process and multiprocessing's resource tracker.
        qcluster = label.startswith("qcluster")
        names = ("", " sentinel", " worker/pusher/monitor") if qcluster else ("", " children", " children")
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        name = label + names[min(depth, 2)]
        self.peaks[pid] = (name, max(hwm, self.peaks.get(pid, ("", 0, 0.0))[1]), cpu)
        for child in children.get(pid, []):
            self._walk(label, child, children, depth + 1)

    def report(self) -> list[str]:
        rss: dict[str, list[int]] = {}
        cpu: dict[str, list[float]] = {}
        for pid, (label, kilobytes, seconds) in self.peaks.items():
            rss.setdefault(label, []).append(round(kilobytes / 1024))
            cpu.setdefault(label, []).append(seconds - self.baseline.get(pid, 0.0))
        ours = sorted((label, mb) for label, mb in rss.items() if not label.startswith("dovecot"))
        peaks = (f"{label} {' / '.join(map(str, sorted(mb)))} MB" for label, mb in ours)
        times = (f"{label} {' / '.join(f'{s:.1f}' for s in sorted(t))} s" for label, t in sorted(cpu.items()))
        server = sum(sum(t) for label, t in cpu.items() if label.startswith("dovecot"))
        times = (*(t for t in times if not t.startswith("dovecot")), f"Dovecot (all its processes) {server:.1f} s")
        return ["peak RSS: " + "; ".join(peaks), "CPU time: " + "; ".join(times)]


def speed_reference(samples: list[Sample]) -> float:
    """This machine's speed now: `parse_message` over the first 1,000 samples on one core.

    A shared machine's speed moves by half within an hour: a run's figures are read
    against this reference, taken with the cluster idle just before the clock starts.
    """
    raws = [s.raw for s in samples[:1000]]
    started = time.process_time()
    for raw in raws:
        parse_message(raw)
    return len(raws) / (time.process_time() - started)


def machine_cpu() -> tuple[float, float, float]:
    """Core-seconds the machine has spent busy, idle (waiting for I/O included) and stolen by
    the hypervisor (a virtual CPU ready to run while another guest had the real one) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    idle, steal = fields[3] + fields[4], fields[7]
    return (sum(fields) - idle - steal) / tick, idle / tick, steal / tick


def reset(account: Account, receiver_url: str) -> Endpoint:
    fresh_mailbox(account)
    Schedule.objects.filter(name="poll-mailboxes").delete()  # the pollers here are the commands
    get_broker().purge_queue()
    schedule = SendingSchedule.load()
    schedule.sending_enabled, schedule.window_start, schedule.window_end, schedule.absence_days = True, "", "", ""
    schedule.save()
    Endpoint.objects.update(url=receiver_url)
    return Endpoint.objects.get()


def fill(account: Account, samples: list[Sample]) -> float:
    """APPEND the samples (MULTIAPPEND, 500 at a time); returns the seconds it took."""
    account.empty()
    client = account.client()
    started = time.perf_counter()
    for first in range(0, len(samples), 500):
        client.multiappend("INBOX", [s.raw for s in samples[first : first + 500]])
    client.logout()
    return time.perf_counter() - started


def wait_cluster_ready() -> None:
    """A trivial job done proves the cluster's workers take jobs."""
    task_id = async_task("django.utils.timezone.now", task_name="bench: cluster ready")
    if result(task_id, wait=120_000) is None:
        raise SystemExit("the job cluster did not run a job within 120 s")


def wait_for(receiver: ReceiverProcess, expected: int, stall_seconds: float = 60) -> None:
    """Until `expected` webhooks arrived, or none arrived for `stall_seconds`."""
    last, last_change = -1, time.monotonic()
    while True:
        count = receiver.count()
        if count >= expected:
            return
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            print(f"  !! stalled at {count} of {expected} webhooks for {stall_seconds:.0f} s")
            return
        time.sleep(0.1)


def subject_of(body: bytes) -> str:
    import json

    found = _SUBJECT_RE.search(body)
    return str(json.loads(b'"' + found.group(1) + b'"')) if found else ""


def check_webhooks(records: list[Request], secret: str, expected: list[str]) -> list[str]:
    """Verify every signature (after the clock stopped); lines saying what was wrong or right."""
    from standardwebhooks import Webhook, WebhookVerificationError

    hook = Webhook(secret)
    bad = 0
    for request in records:
        try:
            hook.verify(request.body, request.headers)
        except WebhookVerificationError:
            bad += 1
    ids = [r.headers.get("webhook-id") for r in records]
    subjects = [subject_of(r.body) for r in records]
    missing = set(expected) - set(subjects)
    unexpected = set(subjects) - set(expected)
    attempts = Attempt.objects.count()
    delivered = Delivery.objects.filter(status="delivered").count()
    lines = [
        f"webhooks: {len(records):,} received for {len(expected):,} expected; "
        f"{len(records) - len(set(ids))} sent twice (same webhook-id), "
        f"{len(subjects) - len(set(subjects))} emails received twice; "
        f"{len(missing)} missing, {len(unexpected)} unexpected",
        f"signatures: {len(records) - bad:,} verified with standardwebhooks, {bad} rejected",
        f"database: {delivered:,} deliveries delivered, {attempts:,} attempts",
    ]
    return lines


def expected_decisions(samples: list[Sample]) -> str:
    wanted: dict[str, int] = {}
    for s in samples:
        wanted[s.expected] = wanted.get(s.expected, 0) + 1
    found = dict(Email.objects.values_list("decision").annotate(n=Count("pk")))
    wrong = {d: (n, found.get(d, 0)) for d, n in wanted.items() if found.get(d, 0) != n}
    return "decisions as expected" if not wrong else f"DECISIONS DIFFER (expected, found): {wrong}"


@dataclass
class Run:
    """One drain of the backlog by the cluster and a poller command, with a clock."""

    account: Account
    count: int
    poller: list[str]
    samples: list[Sample] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def prepare(self) -> None:
        self.receiver = ReceiverProcess(f"{TMP}/received-{time.time_ns()}.jsonl")
        self.usage.watch("receiver", self.receiver.proc.pid)
        self.endpoint = reset(self.account, self.receiver.url)
        self.samples = [mixed(n) for n in range(self.count)]
        appended = fill(self.account, self.samples)
        size = sum(len(s.raw) for s in self.samples) / len(self.samples) / 1024
        webhooks = sum(s.webhook for s in self.samples)
        print(f"  backlog: {self.count:,} emails of {size:.1f} KB on average, {webhooks:,} of them make a webhook")
        print(f"  (APPEND took {appended:.1f} s)")
        self.cluster = start(["qcluster"])
        self.usage.watch("qcluster", self.cluster.pid)
        wait_cluster_ready()
        if PROFILE_DIR:
            py_spy = str(Path(sys.executable).parent / "py-spy")
            output = f"{PROFILE_DIR}/cluster.txt"
            self.spy = spawn(
                [
                    py_spy,
                    "record",
                    "--subprocesses",
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "--pid",
                    str(self.cluster.pid),
                    "-o",
                    output,
                ],
                stdout=subprocess.DEVNULL,
            )

    def start_poller(self) -> None:
        print(f"  speed reference just before the clock starts: {speed_reference(self.samples):,.0f} parses/s")
        self.usage.watch("dovecot", int((Path(self.account.dir) / "run" / "master.pid").read_text()))
        self.usage.sample()
        self.usage.baseline = {pid: cpu for pid, (_, _, cpu) in self.usage.peaks.items()}
        self.cpu_at_start = machine_cpu()
        self.started = time.monotonic()
        self.poll_ended: float | None = None
        if not self.poller:  # as deployed: the poller is a job of the cluster, as the schedule starts it
            async_task("mail.tasks.poll_mailbox", Mailbox.objects.get().pk, 0, task_name="poll (bench)")
            return
        self.poll = start(self.poller)
        self.usage.watch(" ".join(self.poller), self.poll.pid)
        if "--once" in self.poller:
            threading.Thread(target=self._note_end, daemon=True).start()

    def _note_end(self) -> None:
        _, _, rusage = os.wait4(self.poll.pid, 0)
        self.poll_ended = time.monotonic()
        # Its CPU time, exactly: the rusage of a process that ended includes its children's
        # (the parser process), which are counted apart, as last sampled; not ru_maxrss,
        # which would include this process's peak from before the exec.
        label, kilobytes, _ = self.usage.peaks.get(self.poll.pid, (" ".join(self.poller), 0, 0.0))
        children = sum(cpu for name, _, cpu in self.usage.peaks.values() if name == label + " children")
        self.usage.peaks[self.poll.pid] = (label, kilobytes, rusage.ru_utime + rusage.ru_stime - children)

    def finish(self, expected_subjects: list[str]) -> list[Request]:
        """Wait for the webhooks, stop everything, then check and print (backlog webhooks only)."""
        wait_for(self.receiver, len(expected_subjects))
        busy, idle, stolen = (end - start for end, start in zip(machine_cpu(), self.cpu_at_start, strict=True))
        self.usage.sample()
        self.usage.done.set()
        if self.poller and "--once" not in self.poller:
            stop(self.poll)
        if PROFILE_DIR:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait()
        stop(self.cluster)
        records = self.receiver.finish()
        backlog = {s.subject for s in self.samples[: self.count]}
        arrivals = sorted(r.arrived for r in records if subject_of(r.body) in backlog)
        if arrivals:
            first, last = arrivals[0] - self.started, arrivals[-1] - self.started
            if self.poll_ended:
                print(f"  `{' '.join(self.poller)}` finished at {self.poll_ended - self.started:7.1f} s")
            print(f"  first webhook received at   {first:7.1f} s")
            print(f"  last webhook received at    {last:7.1f} s")
            print(f"  end to end: {self.count / last:,.0f} emails/s ({self.count:,} emails in {last:.1f} s)")
        for line in check_webhooks(records, str(self.endpoint.secret), expected_subjects):
            print("  " + line)
        print("  " + expected_decisions(self.samples))
        for line in self.usage.report():
            print("  " + line)
        print(
            f"  machine CPU from the start to the last webhook: {busy:.1f} core-seconds busy, {idle:.1f} idle, "
            f"{stolen:.1f} stolen by the hypervisor"
        )
        return records


def backlog(account: Account, count: int) -> None:
    print(f"\n1. Backlog of {count:,}: qcluster running, then `poll --once --now`")
    run = Run(account, count, ["poll", "--once", "--now"])
    run.prepare()
    run.start_poller()
    run.finish([s.subject for s in run.samples if s.webhook])


def in_cluster(account: Account, count: int) -> None:
    print(f"\n3. As deployed: a backlog of {count:,} drained by the poller job the cluster runs (no `poll` command)")
    run = Run(account, count, [])
    run.prepare()
    run.start_poller()
    run.finish([s.subject for s in run.samples if s.webhook])


def live(account: Account, count: int, live_count: int, interval: float) -> None:
    print(f"\n2. Latency under load: {live_count} new order emails while a backlog of {count:,} drains")
    run = Run(account, count, ["poll", "--now"])
    run.prepare()
    appended: dict[str, float] = {}
    run.start_poller()

    def append_live() -> None:
        # Once the backlog drains (its first webhook came): mail appended before the poller's
        # first search is part of the backlog, and is recorded in its turn.
        while run.receiver.count() == 0:
            time.sleep(0.05)
        first = time.monotonic()
        client = account.client()
        for i in range(live_count):
            time.sleep(max(0.0, first + i * interval - time.monotonic()))
            raw = recadrage(LIVE_BASE + i)
            subject = f"Média Solution - Missions Recadrage - Lot {LIVE_BASE + i}"
            appended[subject] = time.monotonic()
            client.append("INBOX", raw)
        client.logout()

    appender = threading.Thread(target=append_live)
    appender.start()
    appender.join()
    run.samples += [Sample("live", b"", subject, "delivered") for subject in appended]
    expected = [s.subject for s in run.samples if s.webhook]
    records = run.finish(expected)
    backlog_done = max((r.arrived for r in records if subject_of(r.body) not in appended), default=0)
    arrived = {subject_of(r.body): r.arrived for r in records}
    latencies = [arrived[s] - t for s, t in appended.items() if s in arrived]
    under_load = sum(t < backlog_done for t in appended.values())
    if latencies:
        print(
            f"  live emails: {len(latencies)} of {live_count} received, {under_load} appended before the backlog's "
            f"last webhook; APPEND → webhook p50 {statistics.median(latencies):.2f} s, "
            f"p95 {pct(latencies, 95):.2f} s, max {max(latencies):.2f} s"
        )
        print("  each, in order: " + " ".join(f"{x:.2f}" for x in latencies))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--live", type=int, default=20, help="new emails appended while the backlog drains (0: skip)")
    parser.add_argument("--live-interval", type=float, default=0.5)
    parser.add_argument("--in-cluster", action="store_true", help="also: the poller as the cluster's job")
    parser.add_argument("--skip-backlog", action="store_true", help="only the latency under load")
    parser.add_argument("--profile", metavar="DIR", help="py-spy on the cluster and on the poller, into DIR")
    args = parser.parse_args()
    if args.profile:
        global PROFILE_DIR
        PROFILE_DIR = str(Path(args.profile).resolve())
        Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    account = Account(start_server())
    broker = "redis" if settings.REDIS_URL else "orm"
    print(
        f"database: {connection.vendor}; broker: {broker}; Q_WORKERS={settings.Q_WORKERS}; "
        f"python {sys.version.split()[0]}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start"
    )
    if not args.skip_backlog:
        backlog(account, args.backlog)
    if args.live:
        live(account, args.backlog, args.live, args.live_interval)
    if args.in_cluster:
        in_cluster(account, args.backlog)
    account.empty()
    print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
