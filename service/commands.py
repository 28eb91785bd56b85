"""``flask user-sessions …``: maintenance commands for operators."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.exc import DBAPIError

from service.cache import invalidation
from service.database import get_db_session, utcnow
from service.extensions import db
from service.models import UserSession
from service.operations import idempotency
from service.repositories.changes import CHANGES_NOTED, note_change

PURGE_BATCH_SIZE = 1000
MAX_RETENTION = timedelta(days=36500)
WAIT_FIRST_DELAY = 0.25
WAIT_MAX_DELAY = 5.0
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(_ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """``<n>s|m|h|d``, e.g. ``30d``."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration like 30d, 12h, 15m or 90s", param=param)
    try:
        duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        duration = MAX_RETENTION + timedelta(days=1)
    if duration > MAX_RETENTION:
        raise click.BadParameter(f"{value!r} is longer than {MAX_RETENTION.days} days", param=param)
    return duration


# Other stores with a retention period add a step here: it erases what has
# outlived its retention at ``now`` (in batches, one unit of work each) and
# returns what it erased and how many, for the summary line.
RetentionStep = Callable[[datetime], tuple[str, int]]


def forget_idempotency_records(now: datetime) -> tuple[str, int]:
    """Idempotency records past their retention are ignored already; erase them."""
    hours = int(idempotency.RETENTION.total_seconds() // 3600)
    return f"idempotency records older than {hours} hours forgotten", idempotency.forget_expired(now)


RETENTION_STEPS: tuple[RetentionStep, ...] = (forget_idempotency_records,)


@click.group("user-sessions", cls=AppGroup)  # each command runs in an app context
def user_sessions_cli() -> None:
    """Maintain the user-sessions data."""


@user_sessions_cli.command("purge")
@click.option(
    "--deleted-before",
    required=True,
    callback=parse_duration,
    help="Erase sessions soft-deleted, or expired, more than this long ago (e.g. 30d).",
)
def purge_command(deleted_before: timedelta) -> None:
    """Erase soft-deleted and expired sessions for good, in batches, then run
    the other retention steps. A progress bar shows on a terminal; a summary
    line is printed in any case."""
    now = utcnow()
    cutoff = now - deleted_before
    erased = purge_user_sessions(cutoff, progress=sys.stderr.isatty())
    summary = [f"purged {erased} user sessions deleted or expired before {cutoff.isoformat()}"]
    for step in RETENTION_STEPS:
        what, count = step(now)
        summary.append(f"{count} {what}")
    owed = invalidation.send_owed()
    if owed:
        summary.append(f"{owed} cache invalidations Redis did not take (those entries lapse within CACHE_TTL)")
    db.session.remove()
    click.echo("; ".join(summary))


def purge_user_sessions(cutoff: datetime, *, progress: bool = False) -> int:
    """Erase sessions whose ``deleted_at`` or ``expires_at`` is before ``cutoff``,
    with the stored idempotent responses that carry them.

    One unit of work per batch of ``PURGE_BATCH_SIZE``: memory stays bounded,
    locks are short, and an interrupted purge keeps what it erased.
    """
    gone = or_(UserSession.deleted_at < cutoff, UserSession.expires_at < cutoff)
    bar: Any = contextlib.nullcontext()
    if progress:
        with get_db_session() as db_session:
            total = db_session.scalar(select(func.count()).select_from(UserSession).where(gone)) or 0
        bar = click.progressbar(length=total, label="Erasing user sessions", file=sys.stderr)
    erased = 0
    with bar:
        while True:
            with get_db_session() as db_session:
                uuids = list(db_session.scalars(select(UserSession.uuid).where(gone).limit(PURGE_BATCH_SIZE)))
                if not uuids:
                    break
                # The condition again: a session restored since the SELECT is kept.
                statement = (
                    delete(UserSession)
                    .where(UserSession.uuid.in_(uuids), gone)
                    .returning(UserSession.uuid)
                    .execution_options(**CHANGES_NOTED)
                )
                purged = list(db_session.scalars(statement))
                for user_session_uuid in purged:
                    note_change(db_session, user_session_uuid, None)
                # Their conversation items went with them (ON DELETE CASCADE); the
                # idempotency records that hold their data go now.
                idempotency.forget_user_sessions(purged)
            # Committed: listeners (the cache) are told of the batch (service.repositories.changes).
            erased += len(purged)
            if progress:
                bar.update(len(uuids))
    return erased


@user_sessions_cli.command("wait-for-database")
@click.option(
    "--timeout",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    help="Give up after this many seconds.",
)
def wait_for_database_command(timeout: int) -> None:
    """Wait until the database answers, retrying with backoff (the container runs this before migrating)."""
    deadline = time.monotonic() + timeout
    delay, attempt = WAIT_FIRST_DELAY, 1
    while True:
        try:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as error:
            # The error's class only: its text may name hosts and users.
            reason = type(error.orig or error).__name__
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise click.ClickException(f"the database did not answer within {timeout} s ({reason})") from None
            click.echo(f"database not ready (attempt {attempt}: {reason}); retrying in {delay:g} s", err=True)
            time.sleep(min(delay, remaining))
            delay, attempt = min(delay * 2, WAIT_MAX_DELAY), attempt + 1
        else:
            click.echo(f"database ready after {attempt} attempt(s)", err=True)
            return
        finally:
            db.engine.dispose()
