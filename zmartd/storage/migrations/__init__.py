"""The schema, as versioned SQL files ``NNNN_snake_name.sql`` (package data).

Applied in version order by :mod:`zmartd.storage.migrate`, each in its own
transaction.  An applied file must never change (its sha256 is recorded);
change the schema by adding the next version.
"""
