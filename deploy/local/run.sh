#!/usr/bin/env bash
# Runs the translator against a local RabbitMQ with the embedded default
# config (pipeline "build": exchange/build/ -> exchange/pulsetranslator/build/normalized).
# The upstream exchange is declared when missing, as only a local broker allows.
# Extra arguments go to "pulsetranslator run", for example --log-level debug.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/broker.sh
ensure_broker
go build -o ./pulsetranslator ./cmd/pulsetranslator
exec ./pulsetranslator run --declare-upstream "$@"
