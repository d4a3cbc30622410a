# Gunicorn settings, from the environment with the deployment notes' defaults.
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_int('PORT', 8000)}"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 2)
worker_class = "gthread"
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEP_ALIVE", 2)
max_requests = _int("GUNICORN_MAX_REQUESTS", 15000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 3000)
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# Load the app in each worker, so a graceful HUP reload picks up new code.
preload_app = False
# The control socket is not used (reloads are by SIGHUP); it would need a writable $HOME.
control_socket_disable = True
# The access log never shows the token of a sign-in link.
logger_class = "signalserver.gunicorn_logging.RedactingLogger"
# Releases (manage.py release): workers load the code through RELEASES_DIR/current, and the
# master's pid file lets a release hand over to a new master (USR2) without refusing a request.
_releases = os.environ.get("RELEASES_DIR", "").strip()
if _releases:
    chdir = os.path.join(_releases, "current")
pidfile = os.environ.get("GUNICORN_PIDFILE", "").strip() or (
    os.path.join(_releases, "gunicorn.pid") if _releases else None
)
