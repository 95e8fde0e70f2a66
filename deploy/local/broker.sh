#!/usr/bin/env bash
# Ensures a local RabbitMQ answers on 127.0.0.1:5672: starts Debian's
# rabbitmq-server when it is installed and stopped, installs it first when
# it is missing. Sourced by run.sh and test.sh; safe to run again.
set -euo pipefail

broker_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

ensure_broker() {
  if broker_up; then return 0; fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "broker.sh: installing Debian's rabbitmq-server" >&2
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q rabbitmq-server >&2
  fi
  if ! broker_up; then
    echo "broker.sh: starting rabbitmq-server" >&2
    $sudo rabbitmq-server -detached >&2 || true
  fi
  for _ in $(seq 1 60); do
    if broker_up && $sudo rabbitmqctl -q await_startup >/dev/null 2>&1; then
      echo "broker.sh: RabbitMQ is up on 127.0.0.1:5672" >&2
      return 0
    fi
    sleep 1
  done
  echo "broker.sh: RabbitMQ did not come up on 127.0.0.1:5672 within 60s; see /var/log/rabbitmq/" >&2
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_broker; fi
