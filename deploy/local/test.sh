#!/usr/bin/env bash
# Ensures a local RabbitMQ, then runs the whole test suite against it
# (integration tests included; with CI=true a missing broker fails them).
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/broker.sh
ensure_broker
go vet ./...
go test -count=1 ./... "$@"
