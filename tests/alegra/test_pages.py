"""Paging decisions: what a list body holds and where the next page starts (pure)."""

from __future__ import annotations

import pytest

from sync.alegra.pages import UnexpectedListBody, next_start, page_limit, parse_list_body


def test_a_bare_array_is_the_rows_without_a_total() -> None:
    """Without metadata=true Alegra answers a bare array; no total is known."""
    assert parse_list_body([{"id": "1"}, {"id": "2"}]) == ([{"id": "1"}, {"id": "2"}], None)


def test_the_metadata_form_gives_rows_and_total() -> None:
    """With metadata=true the rows are under `data` and the total under `metadata.total`."""
    body = {"metadata": {"total": "61"}, "data": [{"id": "a1"}]}
    assert parse_list_body(body) == ([{"id": "a1"}], 61)


def test_a_garbled_total_is_unknown_rather_than_an_error() -> None:
    """A total that is not a number leaves paging to the short-page rule."""
    assert parse_list_body({"metadata": {"total": "many"}, "data": []}) == ([], None)


@pytest.mark.parametrize("body", [{"message": "oops"}, "text", [1, 2], None])
def test_a_body_that_is_not_a_list_of_records_is_refused(body: object) -> None:
    """Anything but an array of objects (bare or under `data`) raises UnexpectedListBody."""
    with pytest.raises(UnexpectedListBody):
        parse_list_body(body)


def test_the_page_size_is_capped_at_thirty() -> None:
    """Alegra serves at most 30 rows a page, so a larger page size asks for 30."""
    assert (page_limit(100), page_limit(10), page_limit(0)) == (30, 10, 1)


def test_a_full_page_is_followed_by_the_next_offset() -> None:
    """A page of exactly `limit` rows may have more after it."""
    assert next_start(30, 30, 30, None) == 60


def test_a_short_page_is_the_last() -> None:
    """A page with fewer rows than the limit ends the loop."""
    assert next_start(60, 30, 5, None) is None
    assert next_start(0, 30, 0, None) is None


def test_a_full_page_that_reaches_the_total_is_the_last() -> None:
    """When the total is known, no empty page is fetched after the last full one."""
    assert next_start(30, 30, 30, 60) is None
    assert next_start(0, 30, 30, 61) == 30


def test_a_page_longer_than_the_limit_is_a_complete_list() -> None:
    """An endpoint that ignores paging sends everything at once; asking again would repeat it."""
    assert next_start(0, 30, 45, None) is None
