#!/bin/sh
# Container entry point: wait for the database (with backoff), bring its
# schema up to date, then become the command: gunicorn by default. `exec`
# makes it PID 1's replacement, so `docker stop` reaches gunicorn directly.
#
#   DB_WAIT_TIMEOUT   seconds to wait for the database (default 60)
#   MIGRATE_ON_START  "false" skips `flask db upgrade` (when a release job migrates)
#
# Several instances may start at once: migrations take a PostgreSQL advisory
# lock, so they run one after the other and the later ones find nothing to do.
set -eu

if [ "$#" -eq 0 ]; then
    set -- gunicorn wsgi:app
fi

flask --app wsgi user-sessions wait-for-database --timeout "${DB_WAIT_TIMEOUT:-60}"
if [ "${MIGRATE_ON_START:-true}" != "false" ]; then
    flask --app wsgi db upgrade
fi
exec "$@"
