"""What every form of joe's pages shares: a form sent back with a mistake puts the focus on it."""

from __future__ import annotations


class FocusFirstError:
    """A form's page sent back with errors has the focus on the first field in error, as the
    login form has: Django ties that field to its message (aria-invalid, aria-describedby), so a
    screen reader reads out what went wrong, and a phone scrolls to it, rather than leaving the
    focus at the top of a page whose form is further down."""

    def full_clean(self) -> None:
        super().full_clean()  # type: ignore[misc]
        for name, field in self.fields.items():  # type: ignore[attr-defined]
            if name in self.errors:  # type: ignore[attr-defined]
                field.widget.attrs["autofocus"] = True
                return
