"""Pages of a long history whose cost does not grow with it.

`BoundedPaginator` counts at most a bound of rows (1,000, or a page beyond the one asked
for), so the count of a search or a filter stops early instead of visiting every match; it
says when the count was cut. A page is found by its primary keys first, from the index that
orders the list, then only those 25 rows are read: skipping to page 2,000 walks index
entries, not rows.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

COUNT_BOUND = 1_000


class BoundedPaginator(Paginator[Any]):
    def __init__(self, object_list: QuerySet[Any], per_page: int, page_hint: object = None) -> None:
        super().__init__(object_list, per_page)
        try:
            wanted = max(int(str(page_hint)), 1)
        except ValueError:
            wanted = 1
        # One row beyond the bound (or beyond the page after the one asked for) tells "more".
        self.bound = max(COUNT_BOUND, (wanted + 1) * per_page) + 1

    @cached_property
    def count(self) -> int:
        rows: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        return int(rows.order_by().values("pk")[: self.bound].count())

    @property
    def exact(self) -> bool:
        """False when there are more rows than were counted."""
        return self.count < self.bound

    @property
    def count_label(self) -> str:
        return f"{self.count}" if self.exact else f"{self.bound - 1}+"

    @property
    def pages_label(self) -> str:
        return f"{self.num_pages}" if self.exact else f"{-(-(self.bound - 1) // self.per_page)}+"

    def page(self, number: int | str) -> Page[Any]:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        keys = list(rows.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        found = {row.pk: row for row in rows.filter(pk__in=keys)}
        return Page([found[key] for key in keys if key in found], number, self)
