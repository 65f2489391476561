"""Forms for starting generation: a staff batch with per-speaker quotas, a member's live request."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django import forms
from django.db.models import Q
from django.urls import reverse

from ingest.models import Speaker
from joe_site.jobs import JobStatus
from trainer.models import TrainingRun

QUOTA_PREFIX = "quota_"
MAX_SEED = 2**63 - 1  # generations.sampling.MAX_SEED, without importing torch into the web
MAX_NEW_TOKENS_LIMIT = 256


class SamplingFields(forms.Form):
    temperature = forms.FloatField(
        min_value=0.0, max_value=2.0, initial=0.9, help_text="0 always picks the likeliest word."
    )
    top_p = forms.FloatField(min_value=0.01, max_value=1.0, initial=0.95, label="Top-p")
    top_k = forms.IntegerField(min_value=0, max_value=1000, initial=50, label="Top-k",
                               help_text="0 turns it off.")  # fmt: skip
    max_new_tokens = forms.IntegerField(
        min_value=1, max_value=MAX_NEW_TOKENS_LIMIT, initial=60, label="Max new tokens",
        help_text="Per message.",
    )  # fmt: skip


class BatchForm(SamplingFields):
    run = forms.ModelChoiceField(
        queryset=TrainingRun.objects.filter(status=JobStatus.SUCCEEDED).exclude(checkpoint_dir=""),
        empty_label=None,
        label="Model",
    )
    conversations = forms.IntegerField(
        min_value=0, max_value=1000, initial=0, help_text="Whole conversations; the model picks "
        "who speaks next among everyone not opted out.",
    )  # fmt: skip
    prompt = forms.CharField(
        max_length=300, required=False, label="Prompt or topic",
        help_text="Optional: every message (and each conversation's first line) starts with it.",
    )  # fmt: skip
    base_seed = forms.IntegerField(
        min_value=0, max_value=MAX_SEED, label="Base seed",
        help_text="Each snippet gets its own seed derived from this one, stored with it.",
    )  # fmt: skip
    field_order = ["run", "conversations", "temperature", "top_p", "top_k", "max_new_tokens"]

    def __init__(
        self, *args, speakers: Iterable[Speaker], run: TrainingRun | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        chosen = run or TrainingRun.active()
        if chosen is not None:
            self.fields["run"].initial = chosen.pk
        # Another model, other voices: the quotas are asked for again for the model picked.
        self.fields["run"].widget.attrs.update(
            {
                "hx-get": reverse("generations:batches") + "?quotas=1",
                "hx-trigger": "change",
                "hx-target": "#quotas",
                "hx-swap": "outerHTML",
                "aria-controls": "quotas",
            }
        )
        self.fields["base_seed"].initial = secrets.randbelow(2**31)
        self.speakers = list(speakers)
        for speaker in self.speakers:
            self.fields[QUOTA_PREFIX + speaker.slug] = forms.IntegerField(
                min_value=0, max_value=1000, initial=5, label=speaker.display_name
            )

    @classmethod
    def chosen_run(cls, data) -> TrainingRun | None:
        """The model the form (or the page's ?run=) asks for, if it is one to generate from."""
        pk = (data or {}).get("run")
        if not pk or not str(pk).isdigit():
            return None
        return cls.base_fields["run"].queryset.filter(pk=pk).first()

    @staticmethod
    def speakers_for(data, run: TrainingRun | None = None) -> list[Speaker]:
        """Quota inputs: the chosen (else the active) model's speakers who may be written as,
        plus any the posted form still asks for (a friend may opt out while the page is open,
        or the quotas came for another model: the service says so)."""
        from generations.live import allowed_speakers

        prefix = QUOTA_PREFIX
        posted = [key.removeprefix(prefix) for key in data or {} if key.startswith(prefix)]
        speakers = {s.slug: s for s in allowed_speakers(run or TrainingRun.active())}
        speakers.update({s.slug: s for s in Speaker.objects.filter(slug__in=posted)})
        return sorted(speakers.values(), key=lambda s: s.display_name)

    def quota_fields(self) -> list[forms.BoundField]:
        return [self[QUOTA_PREFIX + speaker.slug] for speaker in self.speakers]

    def setting_fields(self) -> list[forms.BoundField]:
        return [field for field in self if not field.name.startswith(QUOTA_PREFIX)]

    def per_speaker(self) -> dict[str, int]:
        return {
            speaker.slug: self.cleaned_data[QUOTA_PREFIX + speaker.slug]
            for speaker in self.speakers
            if self.cleaned_data.get(QUOTA_PREFIX + speaker.slug)
        }


class LiveForm(forms.Form):
    MODES = [("speaker", "One friend"), ("conversation", "A conversation between…")]

    mode = forms.ChoiceField(choices=MODES, initial="speaker", widget=forms.RadioSelect)
    # Those offered and the model's voices who opted out validate (see __init__), so a stale page
    # that offers someone who opted out since gets the service's sentence rather than "select a
    # valid choice".
    speaker = forms.ModelChoiceField(
        queryset=Speaker.objects.all(), required=False, label="Who", empty_label=None
    )
    speakers = forms.ModelMultipleChoiceField(
        queryset=Speaker.objects.all(),
        required=False,
        label="Between",
        widget=forms.CheckboxSelectMultiple,
    )
    opening = forms.CharField(
        max_length=300, required=False, label="Opening words (optional)",
        help_text="The message starts with these; the model goes on from there.",
    )  # fmt: skip
    temperature = forms.FloatField(
        min_value=0.1, max_value=1.5, initial=0.9, help_text="Higher is wilder.",
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )  # fmt: skip

    def __init__(
        self, *args, allowed: Iterable[Speaker], opted_out: Iterable[int] = (), **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        allowed = list(allowed)
        # Any other id is "not one of the available choices", never answered with a name: a phone
        # backup's contacts, kept out of training, are no member's business, opted out or not
        # (``opted_out``: the ids of the active model's voices who opted out since).
        valid = Speaker.objects.filter(Q(pk__in=[s.pk for s in allowed]) | Q(pk__in=opted_out))
        choices = [(speaker.pk, speaker.display_name) for speaker in allowed]
        for name in ("speaker", "speakers"):
            self.fields[name].queryset = valid
            self.fields[name].choices = choices

    def clean(self) -> dict:
        data = super().clean()
        if data.get("mode") == "conversation":
            data["speaker"] = None
            if len(data.get("speakers") or []) < 2:
                self.add_error("speakers", "Pick at least two friends for a conversation.")
        else:
            data["speakers"] = []
            if not data.get("speaker"):
                self.add_error("speaker", "Pick a friend to write as.")
        return data
