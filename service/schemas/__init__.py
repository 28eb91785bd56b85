"""marshmallow schemas: what the API accepts and answers (and, through apispec, openapi.yaml)."""
