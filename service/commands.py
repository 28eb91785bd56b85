"""``flask user-sessions …``: maintenance commands for operators."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import click
from sqlalchemy import delete, or_, select

from service import idempotency
from service.database import get_db_session, utcnow
from service.extensions import db
from service.models import UserSession

PURGE_BATCH_SIZE = 1000
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(_ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """``<n>s|m|h|d``, e.g. ``30d``."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration like 30d, 12h, 15m or 90s", param=param)
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@click.group("user-sessions")
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
    """Erase soft-deleted and expired sessions for good, in batches, and forget
    idempotency records past their 24 hours."""
    cutoff = utcnow() - deleted_before
    gone = or_(UserSession.deleted_at < cutoff, UserSession.expires_at < cutoff)
    with get_db_session() as db_session:
        total = db_session.query(UserSession).filter(gone).count()
    erased = 0
    with click.progressbar(length=total, label="Erasing user sessions", file=sys.stderr) as bar:
        while True:
            with get_db_session() as db_session:
                batch = select(UserSession.uuid).where(gone).limit(PURGE_BATCH_SIZE)
                uuids = list(db_session.scalars(batch))
                if uuids:
                    db_session.execute(delete(UserSession).where(UserSession.uuid.in_(uuids)))
            if not uuids:
                break
            erased += len(uuids)
            bar.update(len(uuids))
    forgotten = idempotency.forget_expired()
    db.session.remove()
    click.echo(f"purged {erased} user sessions deleted or expired before {cutoff.isoformat()}")
    retention_hours = int(idempotency.RETENTION.total_seconds() // 3600)
    click.echo(f"forgot {forgotten} idempotency records older than {retention_hours} hours")
