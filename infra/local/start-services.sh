#!/usr/bin/env bash
# Starts the local PostgreSQL and RabbitMQ (Debian packages) if they are not running,
# enables RabbitMQ's management API, and waits until both answer. Idempotent.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached
fi
for _ in $(seq 1 60); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
rabbitmq-plugins -q enable rabbitmq_management >/dev/null

for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p 5432 && curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null; then
    echo "services: PostgreSQL 127.0.0.1:5432 and RabbitMQ 127.0.0.1:5672 (management API :15672) are up"
    exit 0
  fi
  sleep 1
done
echo "services: PostgreSQL or RabbitMQ management did not come up in 60 s" >&2
exit 1
