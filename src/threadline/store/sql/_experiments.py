"""Experiments in ``SqlStore``: create (with generated ids and names), read, search, rename,
delete and restore, tags.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
import zlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from threadline.entities.experiment import (
    DEFAULT_EXPERIMENT_ID,
    Experiment,
    LifecycleStage,
)
from threadline.errors import (
    InvalidArgumentError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
)
from threadline.store import search
from threadline.store import tables as t
from threadline.store._like import check_name_like, like
from threadline.store.sql._checks import (
    MAX_EXPERIMENT_NAME,
    _check_experiment_id,
    _check_experiment_name,
    _check_tag,
    _check_tags,
)
from threadline.store.sql._engine import SqlBase, now_ms
from threadline.store.sql._row_values import _experiment_values, _kv_rows

logger = logging.getLogger(__name__)


CREATE_RETRIES = 5
_PG_EXPERIMENT_LOCK = zlib.crc32(b"threadline.store.experiments")


def _generated_names(experiment_id: str) -> tuple[str, str]:
    """Names for an experiment created for incoming traces: ``experiment-<id>``, then one
    with a random suffix if that is taken; a long id is shortened so both fit the column."""
    base = f"experiment-{experiment_id}"
    if len(base) > MAX_EXPERIMENT_NAME - 9:
        digest = hashlib.sha256(experiment_id.encode("utf-8", "surrogatepass")).hexdigest()
        base = f"{base[: MAX_EXPERIMENT_NAME - 9 - 17]}~{digest[:16]}"
    return base, f"{base}-{uuid.uuid4().hex[:8]}"


def _experiment(row: RowMapping, tags: dict[str, str]) -> Experiment:
    return Experiment(
        experiment_id=row["experiment_id"],
        name=row["name"],
        artifact_location=row["artifact_location"] or "",
        lifecycle_stage=row["lifecycle_stage"],
        tags=tags,
        creation_time=row["creation_time"],
        last_update_time=row["last_update_time"],
    )


class Experiments(SqlBase):
    """The experiment methods of the store."""

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """Create an experiment; returns its id (the next integer unless one is given)."""
        _check_experiment_name(name)
        tags = _check_tags(tags or {})
        if experiment_id is not None:
            experiment_id = _check_experiment_id(experiment_id)
        with self._errors("create an experiment"):
            for _attempt in range(CREATE_RETRIES):
                try:
                    return self._try_create_experiment(name, artifact_location, tags, experiment_id)
                except sa.exc.IntegrityError:
                    # A concurrent creator took the name or the id (SQLite and PostgreSQL
                    # serialise creators, so only an explicit id racing a generated one gets
                    # here): the next attempt re-checks the name (and reports it) or moves on.
                    logger.debug("Experiment id or name taken concurrently; retrying")
            raise StoreError(
                f"Could not create experiment {name!r}: its id kept colliding with "
                f"experiments created concurrently ({CREATE_RETRIES} attempts). Retry."
            )

    def _try_create_experiment(
        self,
        name: str,
        artifact_location: str | None,
        tags: dict[str, str],
        experiment_id: str | None,
    ) -> str:
        with self._transaction(write=True) as conn:
            if self._dialect == "postgresql":  # creators queue instead of colliding on ids
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_EXPERIMENT_LOCK)))
            self._refuse_taken_name(conn, name)
            if experiment_id is None:
                experiment_id = self._next_experiment_id(conn)
            elif self._existing_experiments(conn, {experiment_id}):
                raise ResourceAlreadyExistsError(
                    f"An experiment with id {experiment_id!r} already exists."
                )
            values = _experiment_values(experiment_id, name, artifact_location or "")
            conn.execute(t.experiments.insert().values(values))
            self._upsert_kv(
                conn,
                t.experiment_tags,
                "experiment_id",
                _kv_rows("experiment_id", experiment_id, tags),
                overwrite=True,
            )
            return experiment_id

    def _refuse_taken_name(self, conn: Connection, name: str) -> None:
        query = sa.select(t.experiments.c.lifecycle_stage).where(t.experiments.c.name == name)
        stage = conn.execute(query).scalar()
        if stage is None:
            return
        hint = " (it is deleted: restore it, or rename it first)" if stage != "active" else ""
        raise ResourceAlreadyExistsError(f"An experiment named {name!r} already exists{hint}.")

    def _next_experiment_id(self, conn: Connection) -> str:
        highest = conn.execute(sa.select(sa.func.max(t.experiments.c.id_number))).scalar()
        return str((highest if highest is not None else 0) + 1)

    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment with this id (deleted ones too); ``ResourceNotFoundError`` if none."""
        with self._read("read an experiment") as conn:
            found = self._experiments_where(
                conn, t.experiments.c.experiment_id == str(experiment_id)
            )
        if not found:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}.")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with this name, or ``None``."""
        with self._read("read an experiment") as conn:
            found = self._experiments_where(conn, t.experiments.c.name == name)
        return found[0] if found else None

    def _experiments_where(self, conn: Connection, *conditions: Any) -> list[Experiment]:
        rows = list(conn.execute(sa.select(t.experiments).where(*conditions)).mappings())
        return self._experiments(conn, rows)

    def _experiments(self, conn: Connection, rows: list[RowMapping]) -> list[Experiment]:
        ids = [row["experiment_id"] for row in rows]
        tags = self._key_values(conn, t.experiment_tags, "experiment_id", ids)
        return [_experiment(row, tags.get(row["experiment_id"], {})) for row in rows]

    def search_experiments(
        self,
        name_like: str | None = None,
        include_deleted: bool = False,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> tuple[list[Experiment], str | None]:
        """Experiments, newest first; ``name_like`` is a LIKE pattern (case-sensitive; see
        ``store/_like.py``: a bad one is an ``InvalidArgumentError``)."""
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        columns = t.experiments.c
        conditions: list[sa.ColumnElement[bool]] = []
        if name_like is not None:
            conditions.append(like(columns.name, check_name_like(name_like)))
        if not include_deleted:
            conditions.append(columns.lifecycle_stage == LifecycleStage.ACTIVE)
        query = (
            sa.select(t.experiments)
            .where(*conditions)
            .order_by(
                columns.creation_time.desc().nulls_last(),
                columns.id_number.desc().nulls_last(),
                columns.experiment_id,
            )
            .limit(limit + 1)
            .offset(offset)
        )
        with self._read("search experiments") as conn:
            rows = list(conn.execute(query).mappings())
            page = self._experiments(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return page, token

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Give an experiment a new, unused name."""
        _check_experiment_name(new_name)
        with self._write("rename an experiment") as conn:
            current = self._require_experiment(conn, experiment_id)
            if current["name"] == new_name:
                return
            self._refuse_taken_name(conn, new_name)
            self._update_experiment(conn, experiment_id, name=new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark an experiment deleted (its traces and runs stay); "0" cannot be deleted."""
        if str(experiment_id) == DEFAULT_EXPERIMENT_ID:
            raise InvalidArgumentError("The Default experiment (id '0') cannot be deleted.")
        with self._write("delete an experiment") as conn:
            self._require_experiment(conn, experiment_id)
            self._update_experiment(conn, experiment_id, lifecycle_stage=LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        """Make a deleted experiment active again."""
        with self._write("restore an experiment") as conn:
            self._require_experiment(conn, experiment_id)
            self._update_experiment(conn, experiment_id, lifecycle_stage=LifecycleStage.ACTIVE)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (or replace) one tag of an experiment."""
        _check_tag(key, value)
        with self._write("set an experiment tag") as conn:
            self._require_experiment(conn, experiment_id)
            row = {"experiment_id": str(experiment_id), "key": key, "value": value}
            self._upsert_kv(conn, t.experiment_tags, "experiment_id", [row], overwrite=True)

    def _update_experiment(self, conn: Connection, experiment_id: str, **values: Any) -> None:
        statement = (
            t.experiments.update()
            .where(t.experiments.c.experiment_id == str(experiment_id))
            .values(**values, last_update_time=now_ms())
        )
        conn.execute(statement)
