"""Alembic environment: runs on the connection handed over by ``migrations.upgrade``."""

from __future__ import annotations

from alembic import context

from threadline.store.migrations import VERSION_TABLE
from threadline.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "threadline migrations run through threadline.store.get_store(uri), which upgrades "
        "the schema on first use; there is no offline mode."
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
