from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import Invite


class SignupForm(UserCreationForm):
    """Username + password, checked by Django's password validators."""


class InviteForm(forms.ModelForm):
    class Meta:
        model = Invite
        fields = ["note"]
        error_messages = {
            "note": {"required": "Say who it is for, so the links in the list can be told apart."}
        }

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.fields["note"].required = True
