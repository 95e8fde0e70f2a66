#!/usr/bin/env bash
# Builds the translator and runs pulsebench against the local RabbitMQ:
# end-to-end throughput, latency and peak RSS of the translator next to a
# bare amqp091-go baseline in the same run. Extra arguments go to
# pulsebench, for example: -n 20000 -runs 3, -replicas 2, -preload -n 100000.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/broker.sh
ensure_broker
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/pulsetranslator" ./cmd/pulsetranslator
go run ./cmd/pulsebench -translator "$bin/pulsetranslator" "$@"
