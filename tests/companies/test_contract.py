"""A company's id is a slug of its name; the body of `POST /v1/companies` / `companies add` is one
declared contract (CompanyIn) whose repr never shows the token."""

from __future__ import annotations

import pytest

from sync.company_contract import (
    RESERVED_ID,
    CompanyIdInvalid,
    CompanyIn,
    company_id,
    is_company_id,
)
from sync.store.db import DEFAULT_COMPANY
from tests.companies.conftest import TOKEN


@pytest.mark.parametrize(("name", "slug"), [
    ("Ferretería Ochoa, S.R.L.", "ferreteria-ochoa-s-r-l"),
    ("  ACME   Corp  ", "acme-corp"),
    ("Ｆｕｌｌｗｉｄｔｈ 1", "fullwidth-1"),
    ("--a--b--", "a-b"),
    ("x" * 80, "x" * 63),
])
def test_the_id_is_a_lowercase_ascii_slug_of_the_name(name: str, slug: str) -> None:
    """Accents dropped, lowercase letters and digits, one dash between runs, at most 63."""
    assert company_id(name) == slug
    assert is_company_id(slug)


@pytest.mark.parametrize("name", ["☕", "日本", "---", "Default", "DEFAULT!"])
def test_a_name_without_letters_or_that_makes_default_is_refused(name: str) -> None:
    """Nothing left to slug, or the reserved id `default`: CompanyIdInvalid."""
    with pytest.raises(CompanyIdInvalid):
        company_id(name)


def test_the_reserved_id_is_the_store_default_company() -> None:
    """The pure contract's reserved id is the store's `default` company."""
    assert RESERVED_ID == DEFAULT_COMPANY


def test_the_model_strips_the_base_url_and_hides_the_token() -> None:
    """A trailing slash is dropped from base_url; the model's repr never shows the token."""
    company = CompanyIn.model_validate({"name": "Acme", "email": "a@b.do", "token": TOKEN,
                                        "base_url": "https://x.do/api/v1/"})
    assert company.base_url == "https://x.do/api/v1"
    assert company.id == "acme"
    assert TOKEN not in repr(company)
