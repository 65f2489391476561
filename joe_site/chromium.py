"""Debian's Chromium, as the browser tests and the README screenshots drive it (headless, no
network chatter: this machine's closed network refuses Chromium's background connections)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
