"""Store failures as the server answers them: 503 + Retry-After only when waiting may help,
500 when the store refused the statement itself, and never the store URL or its password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.server.conftest import ClientFactory
from threadline.server.errors import install_error_handlers
from threadline.store._redact import hide_password, redact
from threadline.store.sql import SqlStore

PASSWORD = "hunter2-not-for-clients"


@pytest.fixture
def doomed_store(postgres_uri: str) -> Iterator[tuple[SqlStore, str]]:
    """A store on its own PostgreSQL database, through a URL holding a password (the local
    server trusts loopback, so the password is accepted and ignored); the test drops it."""
    from tests._pg import create_database, drop_database

    name, uri = create_database()
    url = uri.replace("postgresql://postgres@", f"postgresql+psycopg://postgres:{PASSWORD}@", 1)
    store = SqlStore(url)
    try:
        yield store, name
    finally:
        store.close()
        drop_database(name)


@pytest.mark.postgres
def test_a_lost_database_is_503_without_its_url(
    make_client: ClientFactory,
    doomed_store: tuple[SqlStore, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests._pg import drop_database

    store, name = doomed_store
    client = make_client(store=store)
    assert client.get("/api/v1/experiments").status_code == 200
    drop_database(name)  # its connections are ended; reconnecting finds no database

    with caplog.at_level(logging.WARNING, logger="threadline.server.errors"):
        response = client.get("/api/v1/experiments")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    message = response.json()["error"]["message"]
    assert message.startswith("Could not "), message
    logged = [r.getMessage() for r in caplog.records if r.name == "threadline.server.errors"]
    assert logged, "the failure is logged"
    for text in [message, *logged]:
        assert "://" not in text and PASSWORD not in text and "postgres:" not in text, text
        assert "***" not in text  # not even a masked URL


def _refusing_app(store: SqlStore, statement: str) -> TestClient:
    """An app whose one route runs ``statement`` in a store read (as every route's store
    call does), so a real driver error goes through the store's error mapping."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    def refused() -> None:
        with store._read("run the statement") as conn:
            conn.execute(sa.text(statement))

    return TestClient(app)


@pytest.mark.parametrize(
    ("back_end", "statement", "status"),
    [
        (  # refused values (a duplicate key, a bad cast): the request's data, so 400
            "sqlite",
            "INSERT INTO experiments (experiment_id, id_number, name, creation_time, "
            "last_update_time) VALUES ('0', 0, 'Default', 0, 0)",
            400,
        ),
        pytest.param("postgres", "SELECT CAST('x' AS integer)", 400, marks=pytest.mark.postgres),
        pytest.param(  # a statement the database cannot run: a server bug, so 500
            "postgres", "SELECT * FROM no_such_table", 500, marks=pytest.mark.postgres
        ),
    ],
)
def test_a_refused_statement_is_not_retryable(
    request: pytest.FixtureRequest, back_end: str, statement: str, status: int
) -> None:
    store: SqlStore = request.getfixturevalue(
        "sqlite_store" if back_end == "sqlite" else "pg_store"
    )
    response = _refusing_app(store, statement).get("/refused")
    assert response.status_code == status, response.text
    assert "Retry-After" not in response.headers
    message = response.json()["error"]["message"]
    assert message.startswith(f"Could not run the statement in the {back_end}"), message
    assert "://" not in message


def test_redact_hides_urls_password_settings_and_secrets() -> None:
    text = (
        "failed for postgresql+psycopg://me:pw@db.internal:5432/traces and "
        "s3://bucket/key?x=1, with password=hunter2; PWD: 'two words' (password 'ok')"
    )
    assert redact(text, None, "db.internal") == (
        "failed for <URL hidden> and <URL hidden> with password=***; PWD: *** (password 'ok')"
    )
    assert redact("a short pw: ab", "ab") == "a short pw: ab"  # too short to replace
    assert redact("token abcd here", "abcd") == "token *** here"
    assert redact("password authentication failed for user x") == (
        "password authentication failed for user x"
    )


def test_hide_password_keeps_where_but_not_the_secret() -> None:
    assert hide_password("postgresql://me:s3cret@db:5432/traces") == (
        "postgresql://me:***@db:5432/traces"
    )
    assert hide_password("postgresql://me@db/traces") == "postgresql://me@db/traces"
    assert hide_password("sqlite:////tmp/a:b@c.db") == "sqlite:////tmp/a:b@c.db"
    assert hide_password("http://u:p@host:5000") == "http://u:***@host:5000"
