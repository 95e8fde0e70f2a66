#!/usr/bin/env bash
# The whole flow on this machine, for a first look: ensures a local
# RabbitMQ, then runs "pulsetranslator demo": raw Buildbot messages in, the
# readiness gate checking logs that a local server answers, normalized
# messages out, a refusal parked, and the live page at
# http://127.0.0.1:9464/ until Ctrl-C. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/broker.sh
ensure_broker
exec go run ./cmd/pulsetranslator demo "$@"
