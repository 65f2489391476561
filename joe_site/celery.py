"""The Celery app. Two queues: `default` (ingest, small jobs) and `gpu` (training, generation).

Routing is by task name (settings.CELERY_TASK_ROUTES). Tasks take ids, never model instances, and
record their state on a database row that the web side reads.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joe_site.settings")

app = Celery("joe_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
