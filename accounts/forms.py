from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import Invite


class SignupForm(UserCreationForm):
    """Username + password, checked by Django's password validators."""


class InviteForm(forms.ModelForm):
    class Meta:
        model = Invite
        fields = ["note"]
