"""The local-folder artifact repository: round trips, atomic writes, keys that cannot leave
the folder, prefix deletion, clear errors; and parsing of artifacts destinations."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from threadline.artifacts import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    get_artifact_repository,
    resolve_destination,
)
from threadline.artifacts.local import LocalArtifactRepository
from threadline.errors import InvalidArgumentError, StoreError


@pytest.fixture
def repo(tmp_path: Path) -> LocalArtifactRepository:
    return LocalArtifactRepository(tmp_path / "artifacts")


def test_put_get_overwrite(repo: LocalArtifactRepository) -> None:
    data = os.urandom(1024 * 1024)
    repo.put("traces/tr-1/0001/inputs.json", data)
    assert repo.get("traces/tr-1/0001/inputs.json") == data
    assert (repo.root / "traces" / "tr-1" / "0001" / "inputs.json").read_bytes() == data
    repo.put("traces/tr-1/0001/inputs.json", b"second")
    assert repo.get("traces/tr-1/0001/inputs.json") == b"second"
    # Written through a temporary file that is renamed: nothing is left behind.
    assert sorted(p.name for p in (repo.root / "traces" / "tr-1" / "0001").iterdir()) == [
        "inputs.json"
    ]


def test_missing_artifact_is_not_found(repo: LocalArtifactRepository) -> None:
    with pytest.raises(ArtifactNotFoundError, match=r"'traces/x/y\.json' is missing"):
        repo.get("traces/x/y.json")


@pytest.mark.parametrize(
    "key",
    [
        "../outside.json",
        "traces/../../outside.json",
        "/etc/passwd",
        "traces//x.json",
        "traces/./x.json",
        "traces/x/",
        "",
        "traces\\..\\x.json",
        "traces/x y.json",
        "a" * 2000,
    ],
)
def test_unsafe_keys_are_refused(repo: LocalArtifactRepository, key: str) -> None:
    with pytest.raises(InvalidArgumentError, match="Artifact key"):
        repo.put(key, b"x")
    with pytest.raises(InvalidArgumentError, match="Artifact key"):
        repo.get(key)
    assert not (repo.root.parent / "outside.json").exists()


def test_a_symlink_inside_the_folder_cannot_lead_out(
    repo: LocalArtifactRepository, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (repo.root / "link").symlink_to(outside)
    with pytest.raises(InvalidArgumentError, match="outside"):
        repo.put("link/x.json", b"x")
    assert list(outside.iterdir()) == []


def test_delete_prefix_removes_one_trace_and_its_empty_folders(
    repo: LocalArtifactRepository,
) -> None:
    repo.put("traces/tr-a/01/inputs.json", b"1")
    repo.put("traces/tr-a/02/outputs.json", b"2")
    repo.put("traces/tr-ab/01/inputs.json", b"3")
    repo.delete_prefix("traces/tr-a/")
    assert not (repo.root / "traces" / "tr-a").exists()
    assert repo.get("traces/tr-ab/01/inputs.json") == b"3"
    repo.delete_prefix("traces/tr-a/")  # nothing there: not an error
    repo.delete_prefix("traces/tr-ab/")
    assert list(repo.root.iterdir()) == []  # emptied folders pruned, the root kept
    with pytest.raises(InvalidArgumentError, match="must end with '/'"):
        repo.delete_prefix("traces/tr-a")
    with pytest.raises(InvalidArgumentError):
        repo.delete_prefix("../")


def test_an_unwritable_folder_is_a_retryable_store_error(
    repo: LocalArtifactRepository,
) -> None:
    repo.put("traces/tr-1/01/inputs.json", b"kept")
    (repo.root / "traces" / "tr-2").write_text("a file where a folder should be")
    with pytest.raises(ArtifactStoreError, match="Cannot write artifact") as error:
        repo.put("traces/tr-2/01/inputs.json", b"x")
    assert isinstance(error.value, StoreError)
    assert "can be retried" in str(error.value)
    assert repo.get("traces/tr-1/01/inputs.json") == b"kept"


def test_the_folder_is_created_and_must_be_a_folder(tmp_path: Path) -> None:
    LocalArtifactRepository(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgumentError, match=r"Cannot use .* as the artifacts folder"):
        LocalArtifactRepository(tmp_path / "file")
    with pytest.raises(InvalidArgumentError, match="Cannot use"):
        LocalArtifactRepository(tmp_path / "file" / "below")


def test_destinations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_destination("blobs") == str(tmp_path / "blobs")
    assert resolve_destination(f"file://{tmp_path}/x%20y") == str(tmp_path / "x y")
    assert resolve_destination("s3://bucket/some/prefix") == "s3://bucket/some/prefix"
    repository = get_artifact_repository("blobs")
    assert isinstance(repository, LocalArtifactRepository)
    assert repository.location == str(tmp_path / "blobs")
    assert (tmp_path / "blobs").is_dir()
    for bad, message in (
        ("gs://bucket/x", "Unsupported artifacts destination 'gs://bucket/x'"),
        ("s3:///prefix-only", "is not s3://bucket/prefix"),
        ("file://host/share", "names a remote host"),
        ("  ", "empty"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            get_artifact_repository(bad)


def test_s3_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed
    with pytest.raises(InvalidArgumentError, match=r'pip install "threadline\[s3\]"'):
        get_artifact_repository("s3://bucket/prefix")
