from django.contrib import admin
from django.http import HttpRequest

from trainer.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Deletes a run only when its page would (TrainingRun.why_not_deletable): not the active
    model the gallery generates with, nor a run or batch a worker is still writing. No bulk
    delete, which would not ask each run. Runs are started from the site, which queues them:
    one added here waited forever. Nor is a run made active, given a status or a takeover
    here: its page does that through make_active, which refuses a run with no checkpoint."""

    list_display = ["name", "base_model", "status", "final_val_loss", "is_active", "created_at"]
    list_filter = ["status", "is_active"]
    readonly_fields = [
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not obj.why_not_deletable())

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
