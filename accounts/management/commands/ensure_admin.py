"""Create the first staff account for a local install and print its password.

The password is kept in the data dir (readable by its owner only) so a re-run can print it again;
change it from the site and this file is removed.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin account if there is none, and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        password_file = settings.DATA_DIR / "admin-password"
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            password_file.write_text(password)
            password_file.chmod(0o600)
        elif password_file.exists() and user.check_password(password_file.read_text().strip()):
            password = password_file.read_text().strip()
        else:
            password_file.unlink(missing_ok=True)
            self.stdout.write(
                f"Admin account '{username}' exists (its password was changed; forgotten, "
                f"`.venv/bin/python manage.py changepassword {username}` sets a new one)."
            )
            return
        self.stdout.write(self.style.SUCCESS(f"Log in as '{username}' with password: {password}"))
