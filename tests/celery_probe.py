"""A task the worker tests import (`celery -I tests.celery_probe`): it moves a job row along."""

from celery import shared_task


@shared_task(name="ingest.probe_job")
def probe_job(export_id: int) -> None:
    from ingest.models import Export

    export = Export.objects.get(pk=export_id)
    export.mark_running()
    export.set_progress(3, 3, note="probed")
    export.mark_succeeded()
