"""The OpenAPI document: flask-smorest's ``Api``, completed by ``ContractPlugin``."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml
from flask_smorest import Api

from service.api.openapi.plugin import ContractPlugin, describe_custom_fields


class ServiceApi(Api):
    """flask-smorest's Api, minus its JSON error handler: ``service.api.problems``
    answers every error as problem+json instead.

    Its OpenAPI document is completed by ``ContractPlugin``; flask-smorest's
    own generic error responses, ETag and pagination components are left out,
    and no operation gets a catch-all ``default`` response: each lists the
    statuses it can answer.

    One instance per app (it holds that app's OpenAPI document), made in
    ``create_app``.
    """

    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self) -> None:
        return None

    def _init_spec(self, **kwargs: Any) -> None:
        kwargs["extra_plugins"] = [*kwargs.get("extra_plugins", ()), ContractPlugin()]
        super()._init_spec(**kwargs)
        describe_custom_fields(self)

    def _register_responses(self) -> None:
        return None

    def _register_etag_headers(self) -> None:
        return None

    def _register_pagination_header(self) -> None:
        return None


def openapi_document(api: Api) -> dict[str, Any]:
    """The complete document, as served and committed."""
    document: dict[str, Any] = copy.deepcopy(api.spec.to_dict())
    return document


# YAML 1.2 readers (Spectral, Redocly, openapi-typescript) take ``042917`` for
# the number 42917, where PyYAML's YAML 1.1 reads a string. Teaching the dumper
# YAML 1.2's numbers makes it quote every string a YAML 1.2 reader would take
# for one, in ``render_yaml`` and in ``flask openapi write`` alike.
_YAML_12_NUMBER = re.compile(
    r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)$"
)
yaml.Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_12_NUMBER, list("-+.0123456789"))


def render_yaml(document: dict[str, Any]) -> str:
    """Deterministic YAML: sorted keys, as ``flask openapi write --format yaml`` writes it."""
    return yaml.dump(document)
