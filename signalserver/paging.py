"""Pages of a long history whose cost does not grow with it.

`BoundedPaginator` reads a page by its primary keys first, from the index that orders the
list, one key more than the page holds (which tells whether more follow), then only those
rows. Near the top of the list it counts the rows up to a bound (1,000) and says when the
count was cut; beyond the bound it counts nothing more: the keys of the page already say
how far the list goes at least, so skipping to page 2,000 walks the index once, not twice.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

COUNT_BOUND = 1_000


class BoundedPaginator(Paginator[Any]):
    def __init__(self, object_list: QuerySet[Any], per_page: int) -> None:
        super().__init__(object_list, per_page)
        self.bound = COUNT_BOUND + 1  # one row beyond the bound tells "more"

    @property
    def rows(self) -> QuerySet[Any]:
        return self.object_list  # type: ignore[return-value]

    @cached_property
    def count(self) -> int:
        return int(self.rows.order_by().values("pk")[: self.bound].count())

    @property
    def exact(self) -> bool:
        """False when there are more rows than were counted."""
        return self.count < self.bound

    @property
    def count_label(self) -> str:
        return f"{self.count}" if self.exact else f"{self.count - 1}+"

    @property
    def pages_label(self) -> str:
        return f"{self.num_pages}" if self.exact else f"{self.num_pages}+"

    def get_page(self, number: object) -> Page[Any]:
        """The page asked for; the first one for a page that is not a number, the last one for
        a page beyond the end (as Django's own paginator does)."""
        try:
            wanted = max(int(str(number)), 1)
        except ValueError:
            wanted = 1
        bottom = (wanted - 1) * self.per_page
        keys = list(self.rows.values_list("pk", flat=True)[bottom : bottom + self.per_page + 1])
        if not keys and wanted > 1:
            return self._last_page(bottom)
        if bottom + len(keys) >= self.bound:
            # Beyond the bound: the list goes at least this far (and further, with the extra key).
            self.bound = bottom + self.per_page + 1
            self.__dict__["count"] = bottom + len(keys)
        page = keys[: self.per_page]
        found = {row.pk: row for row in self.rows.filter(pk__in=page)}
        return Page([found[key] for key in page if key in found], wanted, self)

    def page(self, number: int | str) -> Page[Any]:
        return self.get_page(number)

    def _last_page(self, beyond: int) -> Page[Any]:
        self.bound = max(self.bound, beyond + 1)
        self.__dict__.pop("count", None)
        return self.get_page(max(self.num_pages, 1))
