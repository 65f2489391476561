"""The start-a-run form: a base model and the handful of hyperparameters worth changing."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings

from trainer.services import DEFAULT_HYPERPARAMETERS, TINY_BASE

OTHER = "other"
BASE_CHOICES = [
    ("smollm2-135m", "SmolLM2-135M (offline, the default)"),
    (TINY_BASE, "Tiny GPT-2 from scratch (quick tests only)"),
    (OTHER, "Another model: a Hugging Face id or a folder on the worker"),
]
SCHEDULES = [("cosine", "Cosine"), ("linear", "Linear"), ("constant", "Constant")]


def _default_base() -> tuple[str, str]:
    default = settings.JOE_DEFAULT_BASE_MODEL
    if default in dict(BASE_CHOICES):
        return default, ""
    return OTHER, default


class StartRunForm(forms.Form):
    name = forms.CharField(
        max_length=100, required=False, help_text="Leave empty to name it after its settings."
    )
    base_model = forms.ChoiceField(choices=BASE_CHOICES)
    base_model_other = forms.CharField(
        label="Other base model",
        max_length=200,
        required=False,
        help_text="e.g. distilgpt2, HuggingFaceTB/SmolLM2-360M, /srv/models/my-model",
    )
    max_steps = forms.IntegerField(min_value=1, max_value=1_000_000)
    batch_size = forms.IntegerField(
        min_value=1, max_value=512, help_text="Windows per micro-batch."
    )
    grad_accum = forms.IntegerField(
        label="Gradient accumulation",
        min_value=1,
        max_value=256,
        help_text="Micro-batches per optimizer step.",
    )
    lr = forms.FloatField(label="Learning rate", min_value=1e-7, max_value=1.0)
    schedule = forms.ChoiceField(choices=SCHEDULES)
    warmup_steps = forms.IntegerField(min_value=0, max_value=100_000)
    window_len = forms.IntegerField(
        label="Window length", min_value=16, max_value=8192, help_text="Tokens per training window."
    )
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1)
    redact = forms.BooleanField(required=False, label="Redact personal data before training")
    redact_emails = forms.BooleanField(required=False, label="Email addresses")
    redact_phones = forms.BooleanField(required=False, label="Phone numbers")
    redact_urls = forms.BooleanField(required=False, label="Links")
    redact_words = forms.CharField(
        required=False,
        label="Words to redact",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Names, places, anything else: one per line or comma-separated.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        hp = DEFAULT_HYPERPARAMETERS
        base, other = _default_base()
        kwargs.setdefault(
            "initial",
            {
                "base_model": base,
                "base_model_other": other,
                **{k: v for k, v in hp.items() if k in self.base_fields},
                "redact": hp["redaction"]["enabled"],
                "redact_emails": hp["redaction"]["emails"],
                "redact_phones": hp["redaction"]["phones"],
                "redact_urls": hp["redaction"]["urls"],
            },
        )
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("base_model") == OTHER and not data.get("base_model_other", "").strip():
            self.add_error("base_model_other", "Type a Hugging Face model id or a folder path.")
        warmup, steps = data.get("warmup_steps"), data.get("max_steps")
        if warmup is not None and steps is not None and warmup >= steps:
            self.add_error(
                "warmup_steps",
                f"Warm-up must end before the run does (under {steps:,} steps): the learning "
                "rate would never reach the one you chose.",
            )
        return data

    def chosen_base_model(self) -> str:
        data = self.cleaned_data
        if data["base_model"] == OTHER:
            return data["base_model_other"].strip()
        return data["base_model"]

    def hyperparameters(self) -> dict[str, Any]:
        data = self.cleaned_data
        words = [w.strip() for w in re.split(r"[,\n]", data["redact_words"]) if w.strip()]
        return {
            **{k: data[k] for k in DEFAULT_HYPERPARAMETERS if k in self.fields},
            "redaction": {
                "enabled": data["redact"],
                "emails": data["redact_emails"],
                "phones": data["redact_phones"],
                "urls": data["redact_urls"],
                "words": words,
            },
        }
