"""A lighter ingest_message for big imports (benchmarks/ingest_indexes.py, RESULTS "Ingest").

- Lookups by person use an index on identity alone: (identity, sent_at) received an import's
  rows scattered per person and cost a 1M-message import 1.2-1.4x its database time; nothing
  reads messages by person in time order.
- On PostgreSQL the dedup key's column collates "C": byte order, the cheapest for the unique
  index, with the same equality (a deterministic collation compares equal only equal bytes).
  SQLite compares bytes already.
- On PostgreSQL messages are found by export through a BRIN index (block ranges, summarized as
  they fill): an import appends its rows together, so a range summary finds them, and a B-tree
  cost a big import about 10% of its database time. Elsewhere it stays a B-tree. The model
  declares no index on the field (db_index=False), so that Django leaves this one alone.
  BRIN ranges only widen: once deleted exports' pages are reused by later imports, finding an
  export reads more pages (deletions, the import's first check); `REINDEX INDEX CONCURRENTLY
  ingest_message_export` narrows them again.

Upgrading a big site: on PostgreSQL this runs in one transaction that holds ingest_message's
exclusive lock from the first index change to the end (the unique index is rebuilt, two are
built): reads and imports of messages wait for it, about as long as building three indexes
over the table (seconds per million messages). Run it between imports.
"""

import django.db.models.deletion
from django.db import migrations, models


def collate_c(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            'ALTER TABLE ingest_message ALTER COLUMN external_id TYPE varchar(255) COLLATE "C"'
        )


def collate_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE ingest_message ALTER COLUMN external_id TYPE varchar(255) "
            'COLLATE "default"'
        )


def export_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX ingest_message_export ON ingest_message USING brin (export_id)"
            " WITH (autosummarize = on)"
        )
    else:
        schema_editor.execute("CREATE INDEX ingest_message_export ON ingest_message (export_id)")


def drop_export_index(apps, schema_editor):
    schema_editor.execute("DROP INDEX ingest_message_export")


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0004_export_deletion_state"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["identity"], name="ingest_message_identity"),
        ),
        migrations.RemoveIndex(
            model_name="message",
            name="ingest_mess_identit_2d0987_idx",
        ),
        migrations.RunPython(collate_c, collate_default, elidable=False),
        migrations.AlterField(
            model_name="message",
            name="export",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="messages",
                to="ingest.export",
            ),
        ),
        # After the field's change: SQLite rebuilds the table for it, dropping its indexes.
        migrations.RunPython(export_index, drop_export_index, elidable=False),
    ]
