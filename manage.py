#!/usr/bin/env python
"""Django's command-line utility for joe."""

import os
import sys

# sysexits' EX_CONFIG: docker/worker stops on it instead of waiting for the database.
EXIT_CONFIG = 78

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joe_site.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # settings.py's sentence about a variable (SECRET_KEY unset...) is the whole story: a
        # self-hoster reads it in `docker compose logs` without forty lines of traceback above it.
        if type(error).__name__ != "EnvironmentSettingError":
            raise
        print(f"joe: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
