"""The container: the image built from the Dockerfile and run for real, without
a Docker engine (buildah, on a base made from Debian's packages), against the
test PostgreSQL; and its pieces on their own: the Dockerfile passes hadolint
and says what it must, and the entry point, run as it is against a PostgreSQL
that starts late, waits, migrates and serves."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy.engine import make_url

from service import create_app
from tests.support.databases import POSTGRES_URL, fresh_postgres_database
from tests.support.live import PROJECT_ROOT, free_port
from tests.support.pgcluster import PrivatePostgres
from tests.support.requirements import missing

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent
MIGRATIONS = PROJECT_ROOT / "service" / "migrations"
MIGRATION_LOCK_ID = 0x75736572  # service/migrations/env.py


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} is not installed (pip install -e '.[test]')"
    return found


def service_environ(**settings: str) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("PROMETHEUS_", "PYTEST_"))}
    environ["PATH"] = f"{VENV_BIN}{os.pathsep}{environ.get('PATH', '')}"
    environ.update(settings)
    return environ


def script_head() -> str:
    """The newest revision among the migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def head_revision(database_url: str) -> str | None:
    with psycopg.connect(database_url) as connection:
        exists = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
        if exists is None or exists[0] is None:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


# --- Dockerfile ---------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line.split()[0] for line in lines if line and not line.startswith("#")]
    assert instructions.count("FROM") == 2
    assert any(line.startswith("FROM ") and " AS build" in line for line in lines)
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines
    assert "RUN pip install --no-cache-dir ." in lines  # from pyproject.toml
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert any("HEALTHCHECK" in line for line in lines)
    assert "/healthz" in DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["entrypoint"]' in lines
    assert 'CMD ["gunicorn", "wsgi:app"]' in lines
    assert os.access(ENTRYPOINT, os.X_OK)


# --- the entry point, outside a container -----------------------------------------------------


@pytest.mark.slow
def test_the_entrypoint_waits_for_a_late_database_migrates_it_and_serves(tmp_path: Path) -> None:
    cluster = PrivatePostgres()  # made, not started: the entry point must wait for it
    port = free_port()
    key = "entrypoint-key-" + "0" * 24
    log_path = tmp_path / "entrypoint.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT)],
            cwd=PROJECT_ROOT,
            env=service_environ(
                ENV="production",
                DATABASE_URL=cluster.url,
                SECRET_KEY="entrypoint-secret-" + "0" * 24,
                API_KEYS=key,
                HOST="127.0.0.1",
                PORT=str(port),
                GUNICORN_WORKERS="2",
                DB_WAIT_TIMEOUT="60",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "database not ready (attempt 2" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        cluster.start()
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)

        output = log_path.read_text()
        assert "database not ready (attempt 1: OperationalError); retrying in 0.25 s" in output
        assert "database ready after" in output
        assert head_revision(cluster.url) == script_head()
        base = f"http://127.0.0.1:{port}"
        assert requests.post(f"{base}/user-sessions", json={}, timeout=5).status_code == 401
        created = requests.post(f"{base}/user-sessions", json={}, headers={"X-API-Key": key}, timeout=5)
        assert created.status_code == 201
        # `exec`: the entry point's process is now gunicorn's master, and it stops on SIGTERM.
        process.send_signal(signal.SIGTERM)
        # The master gives its workers GUNICORN_GRACEFUL_TIMEOUT (30 s) to finish: wait longer than that.
        try:
            assert process.wait(timeout=45) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn did not stop on SIGTERM:\n{log_path.read_text()}")
        assert "Shutting down: Master" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        cluster.destroy()


def test_the_entrypoint_refuses_production_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT)],
        cwd=PROJECT_ROOT,
        env=service_environ(ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", SECRET_KEY="s" * 32),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ENV=production refuses to start without API_KEYS" in result.stderr


def test_the_entrypoint_can_skip_migrations_and_run_another_command(tmp_path: Path) -> None:
    database = tmp_path / "skipped.sqlite3"
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "flask", "--app", "wsgi", "user-sessions", "purge", "--deleted-before", "30d"],
        cwd=PROJECT_ROOT,
        env=service_environ(DATABASE_URL=f"sqlite:///{database}", SECRET_KEY="s", MIGRATE_ON_START="false"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Not migrated, so the purge finds no table: proof that the upgrade was skipped and the command ran.
    assert result.returncode != 0
    assert "user_sessions" in result.stderr


# --- waiting and migrating -----------------------------------------------------------------------


def test_wait_for_database_gives_up_after_its_timeout_with_a_clear_message() -> None:
    app: Flask = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none", "SECRET_KEY": "s"})
    started = time.monotonic()
    result = app.test_cli_runner().invoke(args=["user-sessions", "wait-for-database", "--timeout", "1"])
    assert 1 <= time.monotonic() - started < 4
    assert result.exit_code == 1
    assert "the database did not answer within 1 s (OperationalError)" in result.output
    assert "retrying in 0.25 s" in result.output
    assert "retrying in 0.5 s" in result.output


def test_wait_for_database_returns_at_once_when_it_answers(tmp_path: Path) -> None:
    app: Flask = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite3'}", "SECRET_KEY": "s"})
    result = app.test_cli_runner().invoke(args=["user-sessions", "wait-for-database", "--timeout", "0"])
    assert result.exit_code == 0
    assert "database ready after 1 attempt(s)" in result.output


@pytest.mark.slow
def test_instances_starting_at_once_migrate_one_after_the_other() -> None:
    """Three upgrades queue on the migration lock; released together, each succeeds."""
    if not POSTGRES_URL:
        pytest.skip("TEST_DATABASE_URL is not set: the migration lock is PostgreSQL's")
    database_url = fresh_postgres_database("concurrent_migrations")
    plain_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    environ = service_environ(DATABASE_URL=database_url, SECRET_KEY="s")
    with psycopg.connect(plain_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        upgrades = [
            subprocess.Popen(
                [tool("flask"), "--app", "wsgi", "db", "upgrade"],
                cwd=PROJECT_ROOT,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        deadline = time.monotonic() + 60
        while waiting_for_lock(holder) < 3:
            assert all(upgrade.poll() is None for upgrade in upgrades), "an upgrade did not wait for the lock"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert head_revision(plain_url) is None
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    outputs = [upgrade.communicate(timeout=120)[0] for upgrade in upgrades]
    assert [upgrade.returncode for upgrade in upgrades] == [0, 0, 0], outputs
    assert head_revision(plain_url) == script_head()
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1


def waiting_for_lock(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
        (MIGRATION_LOCK_ID,),
    ).fetchone()
    return int(row[0]) if row else 0


# --- the image, built and run ---------------------------------------------------------------------
#
# No Docker engine runs here: buildah builds the Dockerfile (vfs storage, chroot
# isolation) and runs the image on the host's network. python:3.11-slim-bookworm
# cannot be pulled either, so the Dockerfile's PYTHON_IMAGE is a base made by
# debootstrap from Debian's packages, cached for the day (docs/operations.md).

DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
BASE_FORMAT = "v2"  # part of the cached base's name: change it when strip_base() or the packages change
# The machine's CA bundle, copied into the base: pip in the build trusts what this machine trusts.
BUILD_CA_BUNDLE = "/etc/ssl/certs/build-host-ca.crt"
BASE_IMAGE = "localhost/user-sessions-base:test"
IMAGE = "localhost/user-sessions:test"
IMAGE_UID = 10001
CONTAINER_OUTPUT = "/test-output"  # a folder of the test's, mounted in the container
CONTAINER_SECRET_KEY = "container-test-secret-key-0123456789abcdef"
CONTAINER_KEY = "container-test-api-key-0123456789abcdef"


def system_tool(name: str) -> str | None:
    """Where ``name`` is installed, on PATH or in the system folders (debootstrap lives in /usr/sbin)."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin{os.pathsep}/sbin")


def require(condition: bool, what: str) -> None:
    """Skip for want of ``what`` (fail instead under TEST_REQUIRE_ALL=1, as in CI)."""
    if not condition:
        missing(what)


def cache_dir() -> Path:
    """``USER_SESSIONS_CACHE_DIR``, else ``$XDG_CACHE_HOME/user-sessions`` (``~/.cache/user-sessions``)."""
    if os.environ.get("USER_SESSIONS_CACHE_DIR"):
        return Path(os.environ["USER_SESSIONS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "user-sessions"


def host_ca_bundle() -> Path:
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.fail("no CA bundle for pip in the build: set PIP_CERT to this machine's")


def strip_base(rootfs: Path) -> None:
    """Leave out what no image needs, as Debian's slim images do: downloaded packages,
    package lists, manual pages and translations. A quarter fewer files for buildah's
    vfs storage to copy into every layer and container, and to remove at the end."""
    patterns = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "usr/share/man/*", "usr/share/info/*")
    for leftover in [path for pattern in patterns for path in rootfs.glob(pattern)]:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    for translations in rootfs.glob("usr/share/locale/*/"):
        shutil.rmtree(translations)


def debian_base_tarball() -> Path:
    """Today's debootstrapped root file system as a tar: made once a day (under a
    lock, so parallel runs make it once), yesterday's removed."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / f"container-base-{DEBIAN_SUITE}-{BASE_FORMAT}-{datetime.now(UTC):%Y-%m-%d}.tar"
    with (directory / "container-base.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        with tempfile.TemporaryDirectory(dir=directory, prefix="debootstrap-") as work:
            rootfs = Path(work) / "rootfs"
            result = subprocess.run(
                [
                    str(system_tool("debootstrap")),
                    "--variant=minbase",
                    f"--include={BASE_PACKAGES}",
                    DEBIAN_SUITE,
                    str(rootfs),
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert result.returncode == 0, f"debootstrap failed:\n{(result.stdout + result.stderr)[-3000:]}"
            strip_base(rootfs)
            partial = Path(work) / "base.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=300)
            partial.replace(tarball)
        for stale in directory.glob("container-base-*.tar"):
            if stale != tarball:
                stale.unlink()
    return tarball


@dataclass
class Buildah:
    """buildah on storage of its own, in a temporary folder removed at the end."""

    storage: Path

    def command(self, *args: str) -> list[str]:
        root, run = str(self.storage / "root"), str(self.storage / "run")
        return [str(system_tool("buildah")), "--root", root, "--runroot", run, "--storage-driver", "vfs", *args]

    def __call__(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, check=False)
        assert result.returncode == 0, f"buildah {' '.join(args)}:\n{(result.stdout + result.stderr)[-4000:]}"
        return result.stdout.strip()

    def run_command(
        self, container: str, command: list[str], output: Path, environ: dict[str, str] | None = None
    ) -> list[str]:
        """``buildah run`` on the host's network (podman run is refused here: crun cannot set rlimits),
        the command's stdout and stderr going to ``output/container.log``.

        Not through buildah: with chroot isolation it now and then drops what a
        process writes just before it exits (seen here: 3 runs of ``id -u`` in 30
        printed nothing). ``sh`` redirects, then execs the command in its place.
        """
        output.mkdir(mode=0o777, exist_ok=True)
        output.chmod(0o777)  # the container's user writes there
        settings = [option for name, value in (environ or {}).items() for option in ("--env", f"{name}={value}")]
        redirected = ["sh", "-c", f'exec "$@" >{CONTAINER_OUTPUT}/container.log 2>&1', "sh", *command]
        return self.command(
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--volume",
            f"{output}:{CONTAINER_OUTPUT}",
            *settings,
            container,
            "--",
            *redirected,
        )


@dataclass
class BuiltImage:
    buildah: Buildah
    config: dict[str, Any]  # the image's OCI config: User, Env, Entrypoint, Cmd
    healthcheck: dict[str, Any]  # Docker's HEALTHCHECK (kept with --format docker)
    # One working container of the image for every test: with vfs, each is a whole copy of the image.
    container: str

    def start_command(self) -> list[str]:
        """What a container engine starts: the entry point with the command."""
        return [*self.config["Entrypoint"], *self.config["Cmd"]]


@pytest.fixture(scope="module")
def image() -> Iterator[BuiltImage]:
    """The Dockerfile built with buildah on a Debian base; about a minute (see docs/operations.md)."""
    missing = [name for name in ("buildah", "debootstrap") if system_tool(name) is None]
    require(
        not missing,
        f"{' and '.join(missing)}: the image is built and run"
        " with buildah on a debootstrapped base (as root: apt-get install buildah debootstrap)",
    )
    require(os.geteuid() == 0, "root: debootstrap and buildah run as root (CI runs as root)")
    buildah = Buildah(Path(tempfile.mkdtemp(prefix="user-sessions-buildah-")))
    try:
        started = time.monotonic()
        tarball = debian_base_tarball()
        base_seconds = time.monotonic() - started
        base = buildah("from", "scratch")
        buildah("add", base, str(tarball), "/")
        buildah("copy", base, str(host_ca_bundle()), BUILD_CA_BUNDLE)
        buildah("config", "--env", f"PIP_CERT={BUILD_CA_BUNDLE}", base)
        buildah("commit", "--quiet", base, BASE_IMAGE)
        buildah("rm", base)
        started = time.monotonic()
        buildah(
            "build",
            "--isolation",
            "chroot",
            "--format",
            "docker",
            "--build-arg",
            f"PYTHON_IMAGE={BASE_IMAGE}",
            "--tag",
            IMAGE,
            "--file",
            str(DOCKERFILE),
            str(PROJECT_ROOT),
            timeout=900,
        )
        print(f"image: base ready in {base_seconds:.1f} s, built in {time.monotonic() - started:.1f} s")
        inspected = json.loads(buildah("inspect", "--type", "image", IMAGE))
        yield BuiltImage(
            buildah,
            inspected["OCIv1"]["config"],
            inspected["Docker"]["config"].get("Healthcheck") or {},
            buildah("from", IMAGE),
        )
    finally:
        subprocess.run(buildah.command("rm", "--all"), capture_output=True, timeout=120, check=False)
        remove_storage(buildah.storage)


def remove_storage(storage: Path) -> None:
    """Remove buildah's folder, unless something is still mounted in it (then removing could reach the host)."""
    with open("/proc/self/mounts") as mounts:
        if any(line.split()[1].startswith(str(storage)) for line in mounts):
            pytest.fail(f"{storage} still has mounts: left in place")
    shutil.rmtree(storage, ignore_errors=True)


def processes_below(pid: int) -> list[int]:
    """Every descendant of ``pid``, parents before children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in sorted(children.get(queue.pop(0), [])):
            found.append(child)
            queue.append(child)
    return found


def process_uid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def process_arguments(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")
    except OSError:
        return []


def container_processes(buildah_pid: int) -> list[int]:
    """The container's processes: everything below the runtime that ``buildah run`` starts as root.
    The first is the container's main process (PID 1 under an engine)."""
    below = processes_below(buildah_pid)
    runtime = [pid for pid in below if process_arguments(pid)[:1] == ["buildah-chroot-exec"]]
    if not runtime:
        return []
    return processes_below(runtime[0])


def text_of(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def drop_postgres_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def test_the_image_starts_its_entry_point_as_a_non_root_user_and_has_a_healthcheck(
    image: BuiltImage, tmp_path: Path
) -> None:
    assert image.config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert image.start_command() == ["entrypoint", "gunicorn", "wsgi:app"]
    assert "ENV=production" in image.config["Env"]
    assert image.healthcheck["Test"][0] == "CMD"
    assert "/healthz" in " ".join(image.healthcheck["Test"])
    container = image.container
    output = tmp_path / "id"
    subprocess.run(image.buildah.run_command(container, ["id", "-u"], output), timeout=60, check=True)
    assert (output / "container.log").read_text().strip() == str(IMAGE_UID)


@pytest.mark.slow
def test_the_container_migrates_serves_with_an_api_key_and_stops_cleanly_on_sigterm(
    image: BuiltImage, tmp_path: Path
) -> None:
    require(bool(POSTGRES_URL), "a PostgreSQL server: set TEST_DATABASE_URL (the container runs against it)")
    database_url = fresh_postgres_database("container_image")
    plain_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environ = {
        "ENV": "production",
        "DATABASE_URL": database_url,
        "SECRET_KEY": CONTAINER_SECRET_KEY,
        "API_KEYS": CONTAINER_KEY,
        # The host's network: listen on loopback only, not on every address of the machine.
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GUNICORN_WORKERS": "2",
    }
    container = image.container
    output, buildah_log = tmp_path / "serve", tmp_path / "buildah.log"

    def logs() -> str:
        return "\n".join(text_of(path) for path in (output / "container.log", buildah_log))

    with buildah_log.open("wb") as log:
        process = subprocess.Popen(
            image.buildah.run_command(container, image.start_command(), output, environ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, logs()
            try:
                ready = requests.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, logs()
            time.sleep(0.2)
        assert ready.json()["database"] == "ok"
        assert head_revision(plain_url) == script_head()

        key = {"Authorization": f"Bearer {CONTAINER_KEY}"}
        assert requests.post(f"{base}/user-sessions", json={}, timeout=5).status_code == 401
        created = requests.post(f"{base}/user-sessions", json={"name": "in a container"}, headers=key, timeout=5)
        assert created.status_code == 201, created.text
        uuid = created.json()["uuid"]
        read = requests.get(f"{base}/user-sessions/{uuid}", headers={"X-API-Key": CONTAINER_KEY}, timeout=5)
        assert read.status_code == 200
        assert read.json()["name"] == "in a container"

        # The image's HEALTHCHECK command, run in the container while it serves, passes.
        health = subprocess.run(
            image.buildah.run_command(
                container, image.healthcheck["Test"][1:], tmp_path / "health", {"PORT": str(port)}
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert health.returncode == 0, health.stdout + health.stderr + text_of(tmp_path / "health/container.log")

        processes = container_processes(process.pid)
        assert processes, "no container process found under buildah run"
        main = processes[0]
        # The entry point exec'd gunicorn: the main process is gunicorn's master, and a signal reaches it.
        assert any(argument.endswith("gunicorn") for argument in process_arguments(main)), process_arguments(main)
        assert len(processes) >= 3  # the master and its two workers
        assert {process_uid(pid) for pid in processes} == {IMAGE_UID}

        # What `docker stop` does: SIGTERM to the main process (buildah run does not forward signals).
        os.kill(main, signal.SIGTERM)
        try:
            assert process.wait(timeout=45) == 0, logs()
        except subprocess.TimeoutExpired:
            pytest.fail(f"the container did not stop on SIGTERM:\n{logs()}")
        served = text_of(output / "container.log")
        assert "Handling signal: term" in served
        assert "Shutting down: Master" in served
        assert "Traceback" not in served
        assert not [pid for pid in processes if process_uid(pid) is not None], "processes outlived the container"
    finally:
        if process.poll() is None:
            for pid in reversed(container_processes(process.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait()
        drop_postgres_database(database_url)


def test_the_container_migrates_without_api_keys_but_refuses_to_serve_without_them(
    image: BuiltImage, tmp_path: Path
) -> None:
    environ = {
        "DATABASE_URL": "sqlite:////app/instance/refused.sqlite3",
        "SECRET_KEY": CONTAINER_SECRET_KEY,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }
    result = subprocess.run(
        image.buildah.run_command(image.container, image.start_command(), tmp_path, environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = text_of(tmp_path / "container.log")
    assert result.returncode != 0, output + result.stdout + result.stderr
    assert "Running upgrade" in output
    assert "ENV=production refuses to start without API_KEYS; set them and start again" in output
    assert "Listening at" not in output


# --- compose.yaml -----------------------------------------------------------------------------------
# No engine here runs it (podman run is refused); it is read as podman-compose reads it and checked
# against the compose specification's schema.

COMPOSE = PROJECT_ROOT / "compose.yaml"
COMPOSE_VARIABLES = ("SECRET_KEY", "API_KEYS", "PORT", "POSTGRES_PASSWORD", "PYTHON_IMAGE", "GUNICORN_WORKERS")


def compose_config(**settings: str) -> subprocess.CompletedProcess[str]:
    environ = {name: value for name, value in service_environ().items() if name not in COMPOSE_VARIABLES}
    environ.update(settings)
    return subprocess.run(
        [tool("podman-compose"), "--file", str(COMPOSE), "config"],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def require_podman() -> None:
    require(
        system_tool("podman") is not None,
        "podman, for podman-compose config (as root: apt-get install podman)",
    )


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_migrates_once_then_starts_the_service_when_its_dependencies_are_healthy() -> None:
    require_podman()
    result = compose_config(SECRET_KEY=CONTAINER_SECRET_KEY, API_KEYS=CONTAINER_KEY)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"postgres", "redis", "migrate", "service"}
    migrate, service = services["migrate"], services["service"]
    assert migrate["image"] == service["image"]
    assert migrate["entrypoint"] == ["flask", "--app", "wsgi", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    # The migration serves nothing: it has no API keys (and needs none).
    assert "API_KEYS" not in migrate["environment"]
    assert service["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    environment = service["environment"]
    assert environment["ENV"] == "production"
    assert environment["API_KEYS"] == CONTAINER_KEY
    assert environment["SECRET_KEY"] == CONTAINER_SECRET_KEY
    assert environment["MIGRATE_ON_START"] == "false"
    assert environment["DATABASE_URL"] == migrate["environment"]["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:")
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert service["ports"] == ["127.0.0.1:8000:8000"]
    assert all(services[name]["healthcheck"]["test"] for name in ("postgres", "redis"))


@pytest.mark.parametrize("absent", ["SECRET_KEY", "API_KEYS"])
def test_compose_refuses_to_start_without_the_secrets(absent: str) -> None:
    require_podman()
    settings = {"SECRET_KEY": CONTAINER_SECRET_KEY, "API_KEYS": CONTAINER_KEY}
    del settings[absent]
    result = compose_config(**settings)
    assert result.returncode != 0
    assert f"required variable {absent} is missing a value" in result.stderr
