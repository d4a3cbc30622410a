"""Form fields shared by the admin pages of both apps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms

WEEKDAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class WeekdaysField(forms.MultipleChoiceField):
    """Seven checkboxes, Monday to Sunday, for a comma-separated text column.

    `values` are the column's own spellings of the seven days (numbers 0-6 for a mailbox's
    active days, names for the sending schedule's absence days): the page is the same
    whatever the column stores.
    """

    widget = forms.CheckboxSelectMultiple(attrs={"class": "weekdays"})

    def __init__(self, values: Sequence[str], **kwargs: Any) -> None:
        super().__init__(choices=list(zip(values, WEEKDAY_LABELS, strict=True)), **kwargs)
        self.values = list(values)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return [day.strip().lower() for day in value.split(",") if day.strip()]
        return value

    def clean(self, value: Any) -> str:
        chosen = set(super().clean(value))
        return ",".join(day for day in self.values if day in chosen)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return set(self.prepare_value(initial or [])) != set(data or [])
