"""Settings read the environment once and say exactly what is wrong with it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, base_env

LOAD_SETTINGS = "import django; django.setup(); from django.conf import settings; print('loaded')"


def load(env: dict[str, str], code: str = LOAD_SETTINGS) -> subprocess.CompletedProcess[str]:
    env = {"DJANGO_SETTINGS_MODULE": "signalserver.settings", **env}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_it_refuses_production_without_secret_key_and_hosts_naming_both():
    result = load(base_env(DEBUG="false"))
    assert result.returncode != 0
    assert "Missing required environment variable(s): SECRET_KEY, ALLOWED_HOSTS" in result.stderr


def test_it_accepts_flask_secret_key_as_an_alias(production_env):
    env = {**production_env, "FLASK_SECRET_KEY": production_env.pop("SECRET_KEY")}
    result = load(env, LOAD_SETTINGS.replace("print('loaded')", "print(settings.SECRET_KEY)"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == env["FLASK_SECRET_KEY"]


def test_it_reads_the_secret_key_from_a_file(production_env, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("file-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH\n")
    env = {**production_env, "SECRET_KEY": "", "SECRET_KEY_FILE": str(secret)}
    result = load(env, LOAD_SETTINGS.replace("print('loaded')", "print(settings.SECRET_KEY)"))
    assert result.stdout.strip() == "file-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH"


def test_it_names_a_malformed_boolean(production_env):
    result = load({**production_env, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_it_names_a_malformed_integer(production_env):
    result = load({**production_env, "PORT": "eighty"})
    assert "PORT='eighty' is not an integer" in result.stderr


def test_it_names_an_out_of_range_integer(production_env):
    result = load({**production_env, "Q_WORKERS": "0"})
    assert "Q_WORKERS=0 is below the minimum of 1" in result.stderr


def test_it_names_an_unknown_role(production_env):
    result = load({**production_env, "SIGNALSERVER_ROLE": "both"})
    assert "SIGNALSERVER_ROLE='both' must be web, worker or all" in result.stderr


def test_it_runs_embedded_without_any_environment_in_development(tmp_path):
    code = LOAD_SETTINGS.replace(
        "print('loaded')",
        "import json; print(json.dumps([settings.DATABASES['default']['ENGINE'], "
        "settings.CACHES['default']['BACKEND'], sorted(settings.Q_CLUSTER), settings.TIME_ZONE, settings.USE_TZ]))",
    )
    result = load(base_env(DEBUG="true", DATA_DIR=str(tmp_path), REDIS_URL="", DATABASE_URL=""), code)
    assert result.returncode == 0, result.stderr
    engine, cache, q_keys, tz, use_tz = json.loads(result.stdout.strip().splitlines()[-1])
    assert engine == "django.db.backends.sqlite3"
    assert cache == "django.core.cache.backends.locmem.LocMemCache"
    assert "orm" in q_keys and "redis" not in q_keys
    assert (tz, use_tz) == ("Europe/Paris", True)


def test_database_and_redis_urls_switch_to_postgresql_and_redis(production_env):
    env = {
        **production_env,
        "DATABASE_URL": "postgres://u:p@db.internal:5432/signal",
        "REDIS_URL": "redis://cache.internal:6379/0",
    }
    code = LOAD_SETTINGS.replace(
        "print('loaded')",
        "import json; print(json.dumps([settings.DATABASES['default']['ENGINE'], "
        "settings.CACHES['default']['BACKEND'], settings.Q_CLUSTER.get('redis'), 'orm' in settings.Q_CLUSTER]))",
    )
    result = load(env, code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "django.db.backends.postgresql",
        "django_redis.cache.RedisCache",
        "redis://cache.internal:6379/0",
        False,
    ]


def test_check_deploy_is_clean_with_a_production_environment(production_env, tmp_path):
    env = {**production_env, "DATABASE_URL": "postgres://u:p@db.internal:5432/signal", "DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_it_refuses_a_magic_link_ttl_under_a_minute(production_env):
    result = load({**production_env, "MAGIC_LINK_TTL_SECONDS": "30"})
    assert result.returncode != 0
    assert "MAGIC_LINK_TTL_SECONDS=30 is below the minimum of 60" in result.stderr
