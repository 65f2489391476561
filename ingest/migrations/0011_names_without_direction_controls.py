"""Names imported before joe dropped direction controls from them lose them now (see
ingest.rows.clean_name): a right-to-left override in a chat name reversed the text around it."""

from django.db import migrations

CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)]


def strip_controls(apps, schema_editor):
    table = dict.fromkeys(map(ord, CONTROLS), None)
    for model_name in ("Speaker", "Identity"):
        model = apps.get_model("ingest", model_name)
        for control in CONTROLS:
            for row in model.objects.filter(display_name__contains=control).only("display_name"):
                row.display_name = row.display_name.translate(table).strip() or "Someone"
                row.save(update_fields=["display_name"])


class Migration(migrations.Migration):
    dependencies = [("ingest", "0010_export_owner_name_help")]

    operations = [migrations.RunPython(strip_controls, migrations.RunPython.noop, elidable=True)]
