"""Persistence: SQLAlchemy 2 tables and the Store that use cases talk to."""
