"""Use cases: one unit of work each. Nothing here knows HTTP or marshmallow."""
