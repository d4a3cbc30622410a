"""Pages of the email list: bounded counts, and far pages read by their keys without a count."""

from __future__ import annotations

import pytest

from mail.models import Email
from signalserver import paging
from signalserver.paging import BoundedPaginator

pytestmark = pytest.mark.django_db


@pytest.fixture
def sixty(box) -> None:
    Email.objects.bulk_create(
        [
            Email(mailbox=box, identity=f"<{i}@t>", email_id="x", subject=f"S{i:02}", decision="delivered")
            for i in range(60)
        ]
    )


def newest_first():
    return Email.objects.order_by("-received_at", "-id")


def test_pages_hold_the_same_rows_in_the_same_order_as_slicing(sixty):
    paginator = BoundedPaginator(newest_first(), 25)
    assert [e.pk for e in paginator.get_page("2")] == [e.pk for e in newest_first()[25:50]]
    assert [e.pk for e in paginator.get_page("3")] == [e.pk for e in newest_first()[50:60]]
    assert paginator.count == 60 and paginator.exact and paginator.count_label == "60"
    assert paginator.pages_label == "3"


def test_the_count_stops_at_the_bound_and_says_so(sixty, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_BOUND", 30)
    paginator = BoundedPaginator(newest_first(), 10)
    paginator.get_page("1")
    assert paginator.count == 31 and not paginator.exact
    assert paginator.count_label == "30+" and paginator.pages_label == "4+"


def test_a_page_beyond_the_bound_is_read_by_its_keys_without_a_count(sixty, monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(paging, "COUNT_BOUND", 30)
    far = BoundedPaginator(newest_first(), 10)
    with django_assert_num_queries(2):  # the page's keys, then its rows
        page = far.get_page("5")
        assert far.count_label == "50+" and far.pages_label == "6+"
    assert [e.pk for e in page] == [e.pk for e in newest_first()[40:50]]
    assert page.has_next() and page.has_previous()
    last = BoundedPaginator(newest_first(), 10)
    page = last.get_page("6")
    assert [e.pk for e in page] == [e.pk for e in newest_first()[50:60]]
    assert last.exact and last.count_label == "60" and not page.has_next()


def test_a_page_out_of_range_or_not_a_number_falls_back_like_django(sixty, monkeypatch):
    assert BoundedPaginator(newest_first(), 25).get_page("99").number == 3
    assert BoundedPaginator(newest_first(), 25).get_page("x").number == 1
    assert BoundedPaginator(newest_first(), 25).get_page("-4").number == 1
    monkeypatch.setattr(paging, "COUNT_BOUND", 30)
    assert [e.pk for e in BoundedPaginator(newest_first(), 10).get_page("99")] == [e.pk for e in newest_first()[50:60]]
