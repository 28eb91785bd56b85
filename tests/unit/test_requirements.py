"""The suite's own rule for what a machine lacks: one skip line naming it and how
to get it, or a failure when ``TEST_REQUIRE_ALL`` is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import requirements
from tests.support.requirements import (
    REQUIRE_ALL,
    require_module,
    require_postgres_server,
    require_program,
    require_redis_url,
)


@pytest.fixture
def programs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A ``fake`` program known to the helper, at a path the test controls; skips allowed."""
    monkeypatch.delenv(REQUIRE_ALL, raising=False)
    program = tmp_path / "fake"
    monkeypatch.setitem(requirements.PROGRAMS, "fake", (str(program), "apt-get install fake"))
    return program


def test_a_missing_program_skips_with_its_name_and_how_to_get_it(programs: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"^needs fake: apt-get install fake$"):
        require_program("fake")


def test_a_file_that_cannot_run_counts_as_missing(programs: Path) -> None:
    programs.write_text("#!/bin/sh\n")
    with pytest.raises(pytest.skip.Exception):
        require_program("fake")
    programs.chmod(0o755)
    assert require_program("fake") == str(programs)


def test_require_all_turns_the_skip_into_a_failure(programs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL, "1")
    with pytest.raises(pytest.fail.Exception, match="needs fake: apt-get install fake"):
        require_program("fake")


def test_postgres_server_programs_are_looked_for_where_postgres_bin_says(
    programs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POSTGRES_BIN", str(tmp_path))
    for name in ("initdb", "pg_ctl"):
        (tmp_path / name).touch(mode=0o755)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL's server programs"):
        require_postgres_server()


def test_an_unset_server_url_skips_naming_the_variable(programs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="set TEST_REDIS_URL="):
        require_redis_url()


def test_a_missing_python_module_skips_naming_it_and_how_to_install_it(programs: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"^needs the Python module no_such_module: pip install it$"):
        require_module("no_such_module", "pip install it")
    assert require_module("json", "always there").dumps([]) == "[]"


def test_require_all_turns_a_missing_module_into_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ALL, "1")
    with pytest.raises(pytest.fail.Exception, match="needs the Python module no_such_module"):
        require_module("no_such_module", "pip install it")
