"""Schema migrations, run programmatically: users never need an ``alembic.ini``.

``sql/_engine.py`` decides when to migrate (a cheap version check, then a lock) and calls
``upgrade(connection)`` inside its locked transaction; this package only knows how.
Alembic is imported only when a migration actually has to run.

To write a new revision (then raise ``HEAD_REVISION`` to match)::

    from alembic import command
    from threadline.store.migrations import alembic_config
    command.revision(alembic_config(), "what changes", rev_id="0002")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

#: The newest revision in ``versions/`` (a test checks they agree): the fast path compares
#: the database's version against it without importing Alembic.
HEAD_REVISION = "0003"

#: Our own version table, so a database shared with another Alembic-managed app is safe.
VERSION_TABLE = "threadline_schema_version"

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config built in code; ``env.py`` reads the connection from its attributes."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def known_revisions() -> set[str]:
    """Every revision this version of threadline ships."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def upgrade(connection: Connection) -> None:
    """Upgrade to head on ``connection``, inside the caller's transaction."""
    from alembic import command

    command.upgrade(alembic_config(connection), "head")
