from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations and gallery"

    def ready(self) -> None:
        # Celery's autodiscovery only imports tasks.py; the report task lives beside its code.
        from generations import members, report  # noqa: F401 (members: its signals)
