"""Every test signs up the same email. With one shared database all but one
would fail on the unique index; with dblease each test has its own."""
import pytest

from app import DuplicateEmail

EMAIL = "ada@example.org"


@pytest.mark.parametrize("n", range(10))
def test_signup_then_cached_lookup(users, n):
    user_id = users.create(EMAIL, f"Ada {n}")
    assert user_id == 1                      # a fresh table: the first id
    assert users.get(user_id)["name"] == f"Ada {n}"
    assert users.cache.dbsize() == 1         # a fresh Redis: only our key
    users.pg.cursor().execute("DELETE FROM users")
    users.pg.commit()
    assert users.get(user_id)["name"] == f"Ada {n}"   # served from the cache


def test_duplicate_email_is_rejected(users):
    users.create(EMAIL, "Ada")
    with pytest.raises(DuplicateEmail):
        users.create(EMAIL, "Impostor")
