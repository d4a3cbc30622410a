"""A substring index on the subject and sender of emails, so a dashboard search reads the index
instead of every row: FTS5 with the trigram tokenizer on SQLite (kept in step by triggers),
pg_trgm GIN indexes on PostgreSQL (matching Django's `icontains`, UPPER(col) LIKE UPPER(%s))."""

from django.db import migrations

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE mail_email_search USING fts5("
    "subject, sender, content='mail_email', content_rowid='id', tokenize='trigram')",
    "INSERT INTO mail_email_search(rowid, subject, sender) SELECT id, subject, sender FROM mail_email",
    "CREATE TRIGGER mail_email_search_insert AFTER INSERT ON mail_email BEGIN "
    "INSERT INTO mail_email_search(rowid, subject, sender) VALUES (new.id, new.subject, new.sender); END",
    "CREATE TRIGGER mail_email_search_delete AFTER DELETE ON mail_email BEGIN "
    "INSERT INTO mail_email_search(mail_email_search, rowid, subject, sender) "
    "VALUES ('delete', old.id, old.subject, old.sender); END",
    "CREATE TRIGGER mail_email_search_update AFTER UPDATE OF subject, sender ON mail_email BEGIN "
    "INSERT INTO mail_email_search(mail_email_search, rowid, subject, sender) "
    "VALUES ('delete', old.id, old.subject, old.sender); "
    "INSERT INTO mail_email_search(rowid, subject, sender) VALUES (new.id, new.subject, new.sender); END",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS mail_email_search_insert",
    "DROP TRIGGER IF EXISTS mail_email_search_delete",
    "DROP TRIGGER IF EXISTS mail_email_search_update",
    "DROP TABLE IF EXISTS mail_email_search",
]
POSTGRES_FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS mail_email_subject_trgm ON mail_email USING gin (UPPER(subject::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS mail_email_sender_trgm ON mail_email USING gin (UPPER(sender::text) gin_trgm_ops)",
]
POSTGRES_BACKWARD = ["DROP INDEX IF EXISTS mail_email_subject_trgm", "DROP INDEX IF EXISTS mail_email_sender_trgm"]


def run(statements: dict[str, list[str]]):
    def apply(apps, schema_editor):
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("mail", "0005_observability_counters")]

    operations = [
        migrations.RunPython(
            run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}),
        )
    ]
