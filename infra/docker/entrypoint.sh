#!/bin/sh
# Chooses the virtsync process from the first argument; see the Dockerfile's header.
set -eu
cd /app

command="${1:-help}"
[ "$#" -gt 0 ] && shift

case "$command" in
  tick-producer | sync-agent | state-writer | audit-subscriber)
    exec node --import tsx "services/$command/main.ts" "$@"
    ;;
  migrate | fleet)
    exec node --import tsx tools/cli/main.ts "$command" "$@"
    ;;
  demo)
    exec node --import tsx tools/demo/main.ts "$@"
    ;;
  cli | virtsync)
    exec node --import tsx tools/cli/main.ts "$@"
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
