"""Take the README's screenshots from a running joe (the demo): the gallery and a run page."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from joe_site.chromium import CHROMIUM, CHROMIUM_FLAGS
from trainer.models import TrainingRun


class Command(BaseCommand):
    help = "Save PNG screenshots of the gallery and the active run's page from a running site."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--out", default=str(settings.BASE_DIR / "docs" / "screenshots"))
        parser.add_argument("--username", default="admin")

    def handle(self, *args, base_url: str, out: str, username: str, **options):
        # bin/demo installs the site alone; Playwright and Chromium are the test tools.
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            sync_playwright = None
        if sync_playwright is None or not Path(CHROMIUM).exists():
            raise CommandError(
                "Screenshots need Playwright and Debian's chromium: bin/test installs both "
                "(or bin/setup --dev, then apt-get install chromium)."
            )
        password_file = settings.DATA_DIR / "admin-password"
        password = os.environ.get("JOE_ADMIN_PASSWORD") or (
            password_file.read_text().strip() if password_file.exists() else ""
        )
        if not password:
            raise CommandError("Set JOE_ADMIN_PASSWORD (the demo keeps it in data/admin-password).")
        run = TrainingRun.active() or TrainingRun.objects.filter(status="succeeded").first()
        if run is None:
            raise CommandError("No finished training run yet: let the demo finish first.")
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(base_url=base_url, viewport={"width": 1100, "height": 900})
            page.emulate_media(reduced_motion="reduce")  # no typewriter half-way through
            page.goto("/accounts/login/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/accounts/login/" not in url)
            shots = {"gallery.png": "/gallery/?sort=top", "run.png": run.get_absolute_url()}
            for name, path in shots.items():
                page.goto(path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(folder / name), full_page=False)
                self.stdout.write(f"Saved {folder / name}")
            browser.close()
