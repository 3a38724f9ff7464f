"""Alembic migrations of the server's database (run by :func:`qualification.server.db.upgrade`)."""
