#!/bin/sh
# Chooses the virtsync process from the first argument; see the Dockerfile's header.
set -eu
cd /app

command="${1:-help}"
[ "$#" -gt 0 ] && shift

case "$command" in
  tick-producer | sync-agent | state-writer | audit-subscriber)
    exec node "dist/services/$command/main.js" "$@"
    ;;
  migrate | fleet)
    exec node dist/tools/cli/main.js "$command" "$@"
    ;;
  demo)
    exec node dist/tools/demo/main.js "$@"
    ;;
  cli | virtsync)
    exec node dist/tools/cli/main.js "$@"
    ;;
  help | --help | -h)
    echo "usage: <image> tick-producer | sync-agent | state-writer | audit-subscriber | migrate | fleet [options] | demo [options] | cli <command> [options]"
    ;;
  *)
    echo "virtsync image: unknown process '$command'" >&2
    echo "usage: <image> tick-producer | sync-agent | state-writer | audit-subscriber | migrate | fleet [options] | demo [options] | cli <command> [options]" >&2
    exit 2
    ;;
esac
