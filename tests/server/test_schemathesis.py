"""Property-based fuzzing of every route in ``/openapi.json`` (schemathesis, in process),
on SQLite and on PostgreSQL: whatever the generated request, valid or not, the server never
answers 5xx. Seeded (``derandomize``) and bounded: ``EXAMPLES`` per operation and mode.

Driven through hypothesis directly (``operation.as_strategy``) rather than schemathesis'
pytest plugin, whose fixture loader does not support this pytest version.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi

from threadline.server import ServerSettings, create_app
from threadline.store.sql import SqlStore

EXAMPLES = 10  # per operation and mode: 28 operations x 2 modes, a few hundred requests


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def operations(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[object]]:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    else:
        uri = request.getfixturevalue("postgres_uri").replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    store = SqlStore(uri)
    app = create_app(ServerSettings(sync_wait_seconds=5.0), store)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield [result.ok() for result in schema.get_all_operations()]
    schemathesis_asgi.shutdown_lifespans()
    store.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_route_answers_5xx(operations: list, mode: GenerationMode) -> None:
    assert len(operations) >= 25
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:500]}"
            )
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"code", "message"} and error["message"]

        try:
            check()
        except Unsatisfiable:  # no invalid request exists for this operation (GET /health)
            assert mode is GenerationMode.NEGATIVE
