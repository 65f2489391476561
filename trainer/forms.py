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

# Upper bounds no real fine-tune of a GPT-2 class model comes near, that stop a typo from queueing
# a run that could never finish. A few hundred to a few thousand steps, 8k-100k tokens per step and
# a learning rate of 1e-5 to 5e-4 are typical.
MAX_STEPS = 200_000
MAX_LR = 0.01
# batch size x gradient accumulation x window length: 2**22, eight times the tokens per step of
# GPT-2's own pretraining (512 x 1024); 64 x 64 x 1024 just fits.
MAX_TOKENS_PER_STEP = 4_194_304


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
    max_steps = forms.IntegerField(
        min_value=1,
        max_value=MAX_STEPS,
        help_text=f"Optimizer steps, up to {MAX_STEPS:,}: a fine-tune needs hundreds to thousands.",
        error_messages={
            "max_value": f"At most {MAX_STEPS:,} steps: a fine-tune on a group chat stops "
            "improving long before that."
        },
    )
    batch_size = forms.IntegerField(
        min_value=1, max_value=512, help_text="Windows per micro-batch."
    )
    grad_accum = forms.IntegerField(
        label="Gradient accumulation",
        min_value=1,
        max_value=256,
        help_text=(
            "Micro-batches per optimizer step. Batch size × accumulation × window length is the "
            f"tokens per step: at most {MAX_TOKENS_PER_STEP:,}."
        ),
    )
    lr = forms.FloatField(
        label="Learning rate",
        min_value=1e-7,
        max_value=MAX_LR,
        help_text=f"Up to {MAX_LR}; fine-tuning usually wants 0.00001 to 0.0005.",
        error_messages={
            "max_value": f"At most {MAX_LR}: a higher learning rate wrecks a pretrained model "
            "within a few steps."
        },
    )
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
        sizes = [data.get(k) for k in ("batch_size", "grad_accum", "window_len")]
        if None not in sizes:
            tokens = sizes[0] * sizes[1] * sizes[2]
            if tokens > MAX_TOKENS_PER_STEP:
                # On each of the three inputs, so whichever one a screen reader is on explains it.
                message = (
                    f"Batch size × gradient accumulation × window length is {tokens:,} tokens per "
                    f"optimizer step; the most is {MAX_TOKENS_PER_STEP:,}. Lower one of the three "
                    "(fine-tuning rarely needs more than about 100,000)."
                )
                for field in ("batch_size", "grad_accum", "window_len"):
                    self.add_error(field, message)
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
