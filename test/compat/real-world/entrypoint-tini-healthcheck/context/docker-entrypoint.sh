#!/bin/bash
# The usual entrypoint: first-run setup, then exec the command (so that tini's child
# is the app and signals reach it). Options alone mean "app with these options".
set -euo pipefail

if [ "${1:-}" = "" ] || [ "${1#-}" != "$1" ]; then
  set -- app "$@"
fi

if [ "$1" = "app" ]; then
  shift
  echo "entrypoint: starting app (mode=${APP_MODE}, port=${APP_PORT})"
  exec /usr/local/bin/app "$@"
fi

exec "$@"
