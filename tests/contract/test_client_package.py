"""The first-party client as a package: its types say what the spec says, and it installs alone.

``clients/python`` is a distribution of its own (``user-sessions-client``); a
program that talks to the service installs it with ``requests`` and nothing
of the service.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
import yaml

import user_sessions_client
from tests.support.live import PROJECT_ROOT

CLIENT_ROOT = PROJECT_ROOT / "clients" / "python"
SPEC = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]

# requests and what it needs, whatever its version: the most the client may bring.
REQUESTS_CLOSURE = {"requests", "certifi", "charset-normalizer", "idna", "urllib3"}

MIRRORED = [
    "UserSession",
    "UserSessionPage",
    "UserSessionCreate",
    "UserSessionPatch",
    "VerificationCodeIssued",
    "VerificationResult",
    "Problem",
    "VerificationCodeIncorrect",
    "ConversationItem",
    "ConversationItemIn",
    "ConversationItemPage",
]

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict, Mapping),
    "array": (list,),
}


def spec_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property schema allows ("null" included)."""
    if "anyOf" in schema:
        return set().union(*(spec_types(option) for option in schema["anyOf"]))
    if "$ref" in schema:
        return {"object"}
    kind = schema.get("type")
    if kind is None:
        return set()
    return {kind} if isinstance(kind, str) else set(kind)


def python_types(hint: Any) -> set[Any]:
    """The classes an annotation allows: ``str | None`` is {str, NoneType}; ``dict[str, Any]`` is {dict}."""
    if get_origin(hint) in (Union, UnionType):
        return set().union(*(python_types(arg) for arg in get_args(hint)))
    if get_origin(hint) is Literal:
        return {type(value) for value in get_args(hint)}
    return {get_origin(hint) or hint}


def test_every_schema_the_client_mirrors_is_a_typeddict_exported_by_the_package() -> None:
    for name in MIRRORED:
        assert name in SCHEMAS, f"openapi.yaml has no schema {name}"
        assert is_typeddict(getattr(user_sessions_client, name)), name


@pytest.mark.parametrize("name", MIRRORED)
def test_typeddict_has_the_keys_and_required_keys_of_its_schema(name: str) -> None:
    typed = getattr(user_sessions_client, name)
    schema = SCHEMAS[name]
    assert set(typed.__required_keys__) | set(typed.__optional_keys__) == set(schema.get("properties", {}))
    assert set(typed.__required_keys__) == set(schema.get("required", []))


@pytest.mark.parametrize("name", MIRRORED)
def test_typeddict_allows_none_exactly_where_its_schema_allows_null_and_the_same_json_types(name: str) -> None:
    hints = get_type_hints(getattr(user_sessions_client, name))
    for field, schema in SCHEMAS[name]["properties"].items():
        allowed = python_types(hints[field])
        kinds = spec_types(schema)
        assert ("null" in kinds) == (NoneType in allowed), f"{name}.{field}: null in {kinds}, hint {hints[field]}"
        for kind in kinds - {"null"}:
            assert allowed & set(JSON_TYPES[kind]), f"{name}.{field}: {kind} is not among {allowed}"


def test_list_filters_are_the_list_query_parameters_but_paging() -> None:
    parameters = [
        parameter for parameter in SPEC["paths"]["/user-sessions"]["get"]["parameters"] if "$ref" not in parameter
    ]
    by_name = {parameter["name"]: parameter for parameter in parameters if parameter["in"] == "query"}
    filters = {"metadata" if name == "metadata.KEY" else name for name in by_name} - {"limit", "page_token", "count"}
    hints = get_type_hints(user_sessions_client.ListFilters)
    assert set(hints) == filters
    for name in ("deleted", "sort"):
        assert set(get_args(hints[name])) == set(by_name[name]["schema"]["enum"])
    for name in ("limit", "page_token", "count"):
        assert name in user_sessions_client.UserSessionsClient.list_page.__code__.co_varnames


def test_list_items_page_takes_the_items_list_query_parameters() -> None:
    (path,) = [path for path in SPEC["paths"] if path.endswith("/items") and "get" in SPEC["paths"][path]]
    parameters = [parameter for parameter in SPEC["paths"][path]["get"]["parameters"] if "$ref" not in parameter]
    by_name = {parameter["name"]: parameter for parameter in parameters if parameter["in"] == "query"}
    signature = user_sessions_client.UserSessionsClient.list_items_page.__code__
    assert set(by_name) <= set(signature.co_varnames[: signature.co_argcount + signature.co_kwonlyargcount])
    assert set(by_name) == {"order", "type", "role", "limit", "page_token"}
    assert set(get_args(user_sessions_client.ItemOrder)) == set(by_name["order"]["schema"]["enum"])


def test_append_items_sends_the_spec_append_body() -> None:
    """``append_items`` wraps its items as ``ItemsAppend`` does: ``{"items": [ConversationItemIn, ...]}``."""
    append = SCHEMAS["ItemsAppend"]
    assert set(append["properties"]) == {"items"}
    assert append["properties"]["items"]["items"]["$ref"].endswith("/ConversationItemIn")
    assert append["properties"]["items"]["maxItems"] == user_sessions_client.MAX_ITEMS_PER_APPEND


def run(*command: str | Path, cwd: Path = PROJECT_ROOT) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


INSTALLED = """
import json, re
from importlib.metadata import distributions
print(json.dumps({
    re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower(): dist.requires or [] for dist in distributions()
}))
"""


def installed(python: Path) -> dict[str, list[str]]:
    """Every distribution in the environment of ``python``, by normalised name, with its requirements."""
    return dict(json.loads(run(python, "-c", INSTALLED)))


def closure(of: str, requirements: dict[str, list[str]]) -> set[str]:
    """``of`` and everything its requirements (without extras) pull in, as installed."""
    seen: set[str] = set()
    todo = [of]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in requirements.get(name, []):
            if "extra ==" in requirement:
                continue
            todo.append(normalised(requirement))
    return seen


def normalised(requirement: str) -> str:
    """The distribution a requirement names, normalised as PEP 503 does (``charset_normalizer`` is
    ``charset-normalizer``)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def copy_of(source: Path, tmp_path: Path) -> Path:
    """A copy of a source tree to build from, so the build leaves nothing in the checkout."""
    target = tmp_path / "source"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "instance", ".*_cache", ".hypothesis", "__pycache__", "build", "dist", "*.egg-info"
    )
    shutil.copytree(source, target, ignore=ignore)
    return target


@pytest.mark.slow
def test_the_client_wheel_installs_into_a_fresh_venv_with_requests_and_nothing_else(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    source = copy_of(CLIENT_ROOT, tmp_path)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, source)
    (wheel,) = wheels.glob("user_sessions_client-*.whl")
    files = zipfile.ZipFile(wheel).namelist()
    assert "user_sessions_client/py.typed" in files
    assert "user_sessions_client/agents.py" in files
    assert {name.split("/")[0] for name in files if not name.startswith("user_sessions_client-")} == {
        "user_sessions_client"
    }

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    before = installed(python)  # pip (and setuptools, on 3.11) come with every venv
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    after = installed(python)

    # requests, and the OpenAI Agents SDK only for the agents extra (user_sessions_client.agents).
    requirements = after["user-sessions-client"]
    assert [requirement for requirement in requirements if "extra ==" not in requirement] == ["requests<3,>=2.32"]
    assert [requirement.split(";")[0] for requirement in requirements if "extra ==" in requirement] == [
        "openai-agents<0.25,>=0.24"
    ]
    added = set(after) - set(before)
    assert added == closure("user-sessions-client", after)
    assert added - {"user-sessions-client"} == REQUESTS_CLOSURE

    # It works on its own: nothing of the service (Flask, SQLAlchemy…) is there, or needed.
    imported = run(
        python,
        "-c",
        "import sys, user_sessions_client as c; c.UserSessionsClient('http://127.0.0.1:1').close();"
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'service') if m in sys.modules))",
        cwd=tmp_path,
    )
    assert imported.strip() == "[]"

    # The Agents SDK session says how to get what it needs when the extra is not installed.
    without_extra = subprocess.run(
        [str(python), "-c", "import user_sessions_client.agents"], cwd=tmp_path, capture_output=True, text=True
    )
    assert without_extra.returncode != 0
    assert "pip install 'user-sessions-client[agents]'" in without_extra.stderr


@pytest.mark.slow
def test_the_service_distribution_no_longer_ships_the_client(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    source = copy_of(PROJECT_ROOT, tmp_path)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, source)
    (wheel,) = wheels.glob("user_sessions_service-*.whl")
    archive = zipfile.ZipFile(wheel)
    assert not [name for name in archive.namelist() if name.startswith("user_sessions_client")]
    (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
    assert "Provides-Extra: client" not in archive.read(metadata).decode()
