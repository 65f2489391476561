from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.formats import date_format
from django.utils.html import format_html_join
from django.utils.timezone import localtime

from trainer.models import TrainingRun


class NeedsRetrainFilter(admin.SimpleListFilter):
    title = "needs retrain"
    parameter_name = "needs_retrain"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(flagged=self.value() == "yes")
        return queryset


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Deletes a run only when its page would (TrainingRun.why_not_deletable): not the active
    model the gallery generates with, nor a run or batch a worker is still writing. No bulk
    delete, which would not ask each run. Runs are started from the site, which queues them:
    one added here waited forever. Nor is a run made active, given a status or a takeover
    here: its page does that through make_active, which refuses a run with no checkpoint."""

    list_display = [
        "name", "base_model", "status", "final_val_loss", "is_active", "needs_retrain", "created_at"
    ]  # fmt: skip
    list_filter = ["status", "is_active", NeedsRetrainFilter]
    readonly_fields = [
        "reasons_to_retrain",  # given and taken back by what happens to the corpus, not here
        "status",
        "is_active",
        "activate_on_success",
        "speaker_ids",  # whom it learnt: what an opt-out looks up
        "loss_history",
        "dataset_summary",
        "report",
        "error",
        "checkpoint_step",
        "resumed_from_step",
        "heartbeat_at",
        "retrain_of",  # a record of what happened: the run page links the two by it
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(flagged=TrainingRun.flagged())

    @admin.display(description="needs a retrain for")
    def reasons_to_retrain(self, run: TrainingRun) -> str:
        rows = [
            (
                reason.text,
                " · ".join(
                    part
                    for part in (
                        reason.get_kind_display(),
                        reason.speaker_name,
                        date_format(localtime(reason.created_at), "DATETIME_FORMAT"),
                    )
                    if part
                ),
            )
            for reason in run.retrain_reasons.all()
        ]
        html = format_html_join("", '<p>{} <span class="help">({})</span></p>', rows)
        return html or self.get_empty_value_display()

    @admin.display(boolean=True, description="needs retrain", ordering="flagged")
    def needs_retrain(self, run: TrainingRun) -> bool:
        return run.flagged

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not obj.why_not_deletable())

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
