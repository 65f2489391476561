"""Fine-tuning runs: their settings, live progress, loss history and the checkpoint they leave."""

from __future__ import annotations

import math

from django.conf import settings
from django.db import models, transaction
from django.urls import reverse

from joe_site.jobs import Job, JobStatus


class TrainingRun(Job):
    name = models.CharField(max_length=100)
    base_model = models.CharField(max_length=200, default="smollm2-135m")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Hyperparameters, exactly as the loop received them (steps, batch, grad accumulation, lr,
    # schedule, window length, seed, redaction...).
    hyperparameters = models.JSONField(default=dict, blank=True)
    dataset_summary = models.JSONField(default=dict, blank=True)
    # Speakers whose messages went into the data: consent changes mark runs that need a retrain.
    speaker_ids = models.JSONField(default=list, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    loss_history = models.JSONField(default=list, blank=True)  # [{step, train_loss, val_loss}]
    final_val_loss = models.FloatField(null=True, blank=True)
    checkpoint_dir = models.CharField(max_length=500, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=False, db_index=True)
    needs_retrain = models.CharField(max_length=300, blank=True)
    report = models.JSONField(default=dict, blank=True)  # quality and leak report

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="one_active_training_run",
            )
        ]

    def __str__(self) -> str:
        return self.name or f"Run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("trainer:run", args=[self.pk])

    @property
    def perplexity(self) -> float | None:
        if self.final_val_loss is None:
            return None
        return math.exp(min(self.final_val_loss, 50.0))

    @classmethod
    def active(cls) -> TrainingRun | None:
        return cls.objects.filter(is_active=True).first()

    def make_active(self) -> None:
        if self.status != JobStatus.SUCCEEDED or not self.checkpoint_dir:
            raise ValueError("Only a finished run with a checkpoint can become the active model.")
        with transaction.atomic():
            TrainingRun.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            TrainingRun.objects.filter(pk=self.pk).update(is_active=True)
        self.is_active = True
