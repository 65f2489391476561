# Shortcuts for the README's commands.
.PHONY: demo test lint
demo:
	bin/demo
test:
	bin/test
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
