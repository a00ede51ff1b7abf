"""Artifacts of one experiment stay out of reach of a token scoped to another (issue 12,
item 2): a trace id that collides with another trace's artifact folder, and references
forged by a client (REST and OTLP), neither overwrite, delete nor read someone else's
payloads. Through a real app on SQLite and PostgreSQL, with a local artifact folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.server.conftest import PROTOBUF, ClientFactory, otlp_request, span_row, trace_row
from tests.server.test_auth import As
from threadline.server.config import TokenGrant
from threadline.store import tables as t
from threadline.store.offload import REFERENCE
from threadline.store.sql import SqlStore

ADMIN = TokenGrant("admin-token-0123456789")
ALICE = TokenGrant("alice-token-0123456789", experiment_ids=frozenset({"1"}))
BOB = TokenGrant("bob-token-0123456789ab", experiment_ids=frozenset({"2"}))
THRESHOLD = 2000
VICTIM = "tr-victim:one"  # ':' is not key-safe: the old code hashed it into the key
# The trace id that spelled the victim's artifact folder in the old key scheme.
COLLIDER = "h-" + hashlib.sha256(VICTIM.encode()).hexdigest()[:40]
SPANS = [f"{n:016x}" for n in range(1, 4)]
SECRETS = [{"secret": f"alice's document {n} " + "s" * 5000} for n in range(3)]
SECRET_EVENTS = [{"name": "chunk", "timestamp_ns": 9, "attributes": {"text": "alice " * 1000}}]


def span(trace: str, n: int, experiment_text: str, **fields: Any) -> dict[str, Any]:
    return {**span_row(1, n + 1, name=experiment_text), "trace_id": trace, **fields}


def trace(trace_id: str, experiment_id: str) -> dict[str, Any]:
    return {**trace_row(1, experiment_id), "trace_id": trace_id}


def forged(key: str) -> str:
    return json.dumps({REFERENCE: {"key": key, "bytes": 10, "preview": "forged"}})


def forged_events(key: str) -> str:
    attributes = {"key": key, "bytes": 10, "preview": "forged"}
    return json.dumps([{"name": REFERENCE, "timestamp_ns": 1, "attributes": attributes}])


def stored(store: SqlStore, trace_id: str, span_id: str) -> dict[str, Any]:
    query = sa.select(t.spans).where(t.spans.c.trace_id == trace_id, t.spans.c.span_id == span_id)
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    assert row is not None
    return dict(row)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def spans_of(caller: As, trace_id: str) -> list[dict[str, Any]]:
    response = caller.get(f"/api/v1/traces/{trace_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["trace"]["data"]["spans"])


@pytest.fixture
def callers(make_client: ClientFactory, any_store: SqlStore, tmp_path: Path) -> dict[str, As]:
    client = make_client(
        store=any_store,
        auth_tokens=(ADMIN, ALICE, BOB),
        artifacts_destination=str(tmp_path / "artifacts"),
        artifact_threshold_bytes=THRESHOLD,
    )
    admin = As(client, ADMIN.token)
    for name in ("one", "two"):
        assert admin.post("/api/v1/experiments", json={"name": name}).status_code == 201
    return {"alice": As(client, ALICE.token), "bob": As(client, BOB.token)}


class Victim:
    """Alice's trace in experiment 1 (its id hashed by the old key scheme), stored."""

    def __init__(self, alice: As, store: SqlStore, folder: Path) -> None:
        spans = [span(VICTIM, n, "alice", inputs_json=json.dumps(s)) for n, s in enumerate(SECRETS)]
        spans[0]["events_json"] = json.dumps(SECRET_EVENTS)
        body = {"traces": [trace(VICTIM, "1")], "spans": spans}
        assert alice.post("/api/v1/traces/batch", json=body).status_code == 200
        self.alice, self.folder = alice, folder
        self.files = files(folder)
        assert len(self.files) == 4
        # Where the payloads went, as the server recorded it (others may compute or guess it).
        row = stored(store, VICTIM, SPANS[0])
        self.inputs_key = json.loads(row["inputs"])[REFERENCE]["key"]
        self.events_key = json.loads(row["events"])[0]["attributes"]["key"]

    def assert_intact(self) -> None:
        assert {k: v for k, v in files(self.folder).items() if k in self.files} == self.files
        spans = spans_of(self.alice, VICTIM)
        assert [s["inputs"] for s in spans] == SECRETS
        assert spans[0]["events"] == SECRET_EVENTS


@pytest.fixture
def victim(callers: dict[str, As], any_store: SqlStore, tmp_path: Path) -> Victim:
    return Victim(callers["alice"], any_store, tmp_path / "artifacts")


def bob_writes(bob: As, *spans: dict[str, Any]) -> None:
    body = {"traces": [trace(COLLIDER, "2")], "spans": list(spans)}
    assert bob.post("/api/v1/traces/batch", json=body).status_code == 200


def test_another_experiments_token_cannot_overwrite_artifacts(
    callers: dict[str, As], victim: Victim
) -> None:
    """Bob (experiment 2) names a trace like Alice's old artifact folder and sends large
    payloads for her span ids: they go to his own objects."""
    bob = callers["bob"]
    junk = [span(COLLIDER, n, "bob", inputs_json=json.dumps({"junk": "b" * 5000})) for n in (0, 1)]
    junk[0]["events_json"] = json.dumps(
        [{"name": "junk", "timestamp_ns": 1, "attributes": {"j": "b" * 5000}}]
    )
    bob_writes(bob, *junk)
    victim.assert_intact()
    assert [s["inputs"] for s in spans_of(bob, COLLIDER)] == [{"junk": "b" * 5000}] * 2
    assert bob.get(f"/api/v1/traces/{VICTIM}").status_code == 404


def test_another_experiments_token_cannot_delete_artifacts(
    callers: dict[str, As], victim: Victim
) -> None:
    """Bob deletes his colliding trace, with large payloads and references to Alice's
    artifacts in it: only his own artifacts go."""
    bob = callers["bob"]
    old_scheme = f"traces/{COLLIDER}/{SPANS[1]}/inputs.json"
    bob_writes(
        bob,
        span(COLLIDER, 0, "bob", inputs_json=json.dumps({"junk": "b" * 5000})),
        span(COLLIDER, 1, "bob", inputs_json=forged(old_scheme)),
        span(COLLIDER, 2, "bob", inputs_json=forged(victim.inputs_key)),
    )
    delete = {"experiment_id": "2", "trace_ids": [COLLIDER]}
    assert bob.post("/api/v1/traces/delete", json=delete).json() == {"deleted": 1}
    assert files(victim.folder) == victim.files
    victim.assert_intact()


def test_another_experiments_token_cannot_read_artifacts_by_a_forged_reference(
    callers: dict[str, As], victim: Victim, any_store: SqlStore
) -> None:
    """Bob's spans hold references to Alice's artifacts (by the old key scheme, which his
    trace id spells, and by the keys the server used, also named in an extra field): they
    are his data, as he sent it."""
    bob = callers["bob"]
    old_scheme = f"traces/{COLLIDER}/{SPANS[0]}/inputs.json"
    bob_writes(
        bob,
        span(COLLIDER, 0, "bob", inputs_json=forged(old_scheme)),
        span(
            COLLIDER,
            1,
            "bob",
            inputs_json=forged(victim.inputs_key),
            events_json=forged_events(victim.events_key),
            # the name of the column that marks references: not a field a client can send
            artifact_keys=json.dumps({"inputs": victim.inputs_key, "events": victim.events_key}),
        ),
    )
    response = bob.get(f"/api/v1/traces/{COLLIDER}")
    assert response.status_code == 200
    assert "alice" not in response.text
    first, second = spans_of(bob, COLLIDER)
    assert first["inputs"] == json.loads(forged(old_scheme))
    assert second["inputs"] == json.loads(forged(victim.inputs_key))
    assert second["events"] == json.loads(forged_events(victim.events_key))
    one = bob.get(f"/api/v1/traces/{COLLIDER}/spans/{SPANS[0]}")
    assert one.json()["span"]["inputs"] == json.loads(forged(old_scheme))
    search = bob.post("/api/v1/traces/search", json={"include_spans": True})
    assert search.status_code == 200 and "alice" not in search.text
    assert stored(any_store, COLLIDER, SPANS[1])["inputs"] == forged(victim.inputs_key)
    victim.assert_intact()


def test_a_reference_sent_over_otlp_is_plain_data(
    callers: dict[str, As], any_store: SqlStore
) -> None:
    """Over OTLP, Bob's references (to Alice's artifact, and to the one the server made of
    his own earlier payload) are stored and read back as he sent them."""
    alice, bob = callers["alice"], callers["bob"]
    victim = span(VICTIM, 0, "alice", inputs_json=json.dumps(SECRETS[0]))
    body = {"traces": [trace(VICTIM, "1")], "spans": [victim]}
    assert alice.post("/api/v1/traces/batch", json=body).is_success
    alice_key = json.loads(stored(any_store, VICTIM, SPANS[0])["inputs"])[REFERENCE]["key"]
    headers = {**PROTOBUF, "x-threadline-experiment-id": "2", "x-threadline-sync": "1"}

    def send(inputs: str) -> None:
        attributes = {"threadline.span_type": "CHAIN", "threadline.inputs": inputs}
        message = otlp_request([{"trace": 7, "span": 1, "attributes": attributes}])
        response = bob.post("/v1/traces", content=message.SerializeToString(), headers=headers)
        assert response.status_code == 200, response.text

    bob_trace = f"tr-{7:032x}"
    send(json.dumps({"early": "b" * 5000}))  # offloaded by the server
    own_key = json.loads(stored(any_store, bob_trace, SPANS[0])["inputs"])[REFERENCE]["key"]
    for key in (own_key, alice_key):
        send(forged(key))
        assert stored(any_store, bob_trace, SPANS[0])["inputs"] == forged(key)
        response = bob.get(f"/api/v1/traces/{bob_trace}")
        assert response.status_code == 200, response.text
        assert "alice" not in response.text and "early" not in response.text
        assert response.json()["trace"]["data"]["spans"][0]["inputs"] == json.loads(forged(key))
    assert spans_of(alice, VICTIM)[0]["inputs"] == SECRETS[0]
