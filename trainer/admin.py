from django.contrib import admin

from trainer.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["name", "base_model", "status", "final_val_loss", "is_active", "created_at"]
    list_filter = ["status", "is_active"]
    readonly_fields = [
        "loss_history",
        "dataset_summary",
        "report",
        "error",
        "checkpoint_step",
        "resumed_from_step",
        "heartbeat_at",
    ]
