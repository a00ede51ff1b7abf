"""Experiments: create, read, search, rename, delete, restore, tags."""

from __future__ import annotations

import threading

import pytest

from threadline.errors import (
    InvalidArgumentError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from threadline.store.sql import SqlStore


def test_the_default_experiment_exists(store: SqlStore) -> None:
    default = store.get_experiment("0")
    assert (default.name, default.lifecycle_stage) == ("Default", "active")
    assert store.get_experiment_by_name("Default") == default


def test_create_gives_increasing_integer_ids(store: SqlStore) -> None:
    first = store.create_experiment("first", tags={"team": "a"})
    second = store.create_experiment("second", artifact_location="/tmp/a")
    assert (first, second) == ("1", "2")
    experiment = store.get_experiment("1")
    assert (experiment.name, experiment.tags) == ("first", {"team": "a"})
    assert experiment.creation_time is not None
    assert store.get_experiment("2").artifact_location == "/tmp/a"


def test_create_with_an_explicit_id(store: SqlStore) -> None:
    assert store.create_experiment("pinned", experiment_id="100") == "100"
    assert store.create_experiment("named-id", experiment_id="my-exp") == "my-exp"
    assert store.create_experiment("after") == "101"
    assert store.get_experiment("my-exp").name == "named-id"
    with pytest.raises(ResourceAlreadyExistsError, match="id '100'"):
        store.create_experiment("other", experiment_id="100")


def test_names_are_unique(store: SqlStore) -> None:
    store.create_experiment("taken")
    with pytest.raises(ResourceAlreadyExistsError, match="'taken' already exists"):
        store.create_experiment("taken")
    store.delete_experiment(store.get_experiment_by_name("taken").experiment_id)  # type: ignore[union-attr]
    with pytest.raises(ResourceAlreadyExistsError, match="it is deleted"):
        store.create_experiment("taken")


@pytest.mark.parametrize("name", ["", "   ", None, 3, "x" * 257])
def test_bad_names_are_refused(store: SqlStore, name: object) -> None:
    with pytest.raises(InvalidArgumentError):
        store.create_experiment(name)  # type: ignore[arg-type]


def test_unknown_experiments(store: SqlStore) -> None:
    assert store.get_experiment_by_name("nope") is None
    for call in (
        lambda: store.get_experiment("404"),
        lambda: store.rename_experiment("404", "x"),
        lambda: store.delete_experiment("404"),
        lambda: store.restore_experiment("404"),
        lambda: store.set_experiment_tag("404", "k", "v"),
    ):
        with pytest.raises(ResourceNotFoundError, match="No experiment with id '404'"):
            call()


def test_rename(store: SqlStore) -> None:
    one = store.create_experiment("one")
    store.create_experiment("two")
    store.rename_experiment(one, "uno")
    assert store.get_experiment(one).name == "uno"
    assert store.get_experiment_by_name("one") is None
    store.rename_experiment(one, "uno")
    with pytest.raises(ResourceAlreadyExistsError):
        store.rename_experiment(one, "two")


def test_delete_and_restore(store: SqlStore) -> None:
    experiment_id = store.create_experiment("temp")
    store.delete_experiment(experiment_id)
    assert store.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert [e.name for e in store.search_experiments()[0]] == ["Default"]
    assert {e.name for e in store.search_experiments(include_deleted=True)[0]} == {
        "Default",
        "temp",
    }
    store.restore_experiment(experiment_id)
    assert store.get_experiment(experiment_id).lifecycle_stage == "active"


def test_the_default_experiment_cannot_be_deleted(store: SqlStore) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot be deleted"):
        store.delete_experiment("0")


def test_experiment_tags(store: SqlStore) -> None:
    experiment_id = store.create_experiment("tagged", tags={"a": "1"})
    store.set_experiment_tag(experiment_id, "a", "2")
    store.set_experiment_tag(experiment_id, "b", "3")
    assert store.get_experiment(experiment_id).tags == {"a": "2", "b": "3"}
    with pytest.raises(InvalidArgumentError):
        store.set_experiment_tag(experiment_id, "", "x")


def test_search_by_name_and_page(store: SqlStore) -> None:
    for n in range(5):
        store.create_experiment(f"proj-{n}")
    store.create_experiment("other")
    matches, token = store.search_experiments(name_like="proj-%")
    assert [e.name for e in matches] == [f"proj-{n}" for n in range(4, -1, -1)]
    assert token is None
    assert store.search_experiments(name_like="PROJ-%")[0] == []
    seen = []
    token = None
    while True:
        page, token = store.search_experiments(max_results=4, page_token=token)
        seen += [e.name for e in page]
        if token is None:
            break
    assert len(seen) == 7 and len(set(seen)) == 7


def test_concurrent_creators_get_distinct_ids(store: SqlStore) -> None:
    created: list[str] = []
    errors: list[BaseException] = []

    def create(worker: int) -> None:
        try:
            for n in range(4):
                created.append(store.create_experiment(f"w{worker}-{n}"))
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(created, key=int) == [str(n) for n in range(1, 25)]
