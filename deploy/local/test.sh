#!/usr/bin/env bash
# Ensures a local RabbitMQ, then runs the whole test suite against it
# (integration tests included; with CI=true a missing broker fails them).
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/broker.sh
ensure_broker
go vet ./...
# The runner's package runs the fault and cluster tests, which take
# minutes; a cluster test that waits out RabbitMQ's dead-letter confirm
# timeout takes up to ten on its own.
go test -count=1 -timeout 40m ./... "$@"
# Every in-process benchmark once, so that none stops running unnoticed.
go test -run '^$' -bench . -benchtime 1x ./pipeline ./pipeline/rawjson ./translators/... ./schemas ./rules
# Fuzz the envelope decoder, the outline and array elements of checked
# bodies, upstream header tables (what a copy carries, and what the runner
# makes of them), the buildbot translator and its build-key matcher for a fixed time
# (FUZZTIME, default 15s each); a crasher fails the run and is written to
# the package's testdata/fuzz, to be fixed and kept as a regression case.
fuzztime="${FUZZTIME:-15s}"
# Minimizing each new input for go test's default minute spent the whole
# fuzz time of the translator (corpus bodies are 16 KB) on a few inputs:
# a hundred tries each keeps it fuzzing.
minimize="${FUZZMINIMIZE:-100x}"
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ./pipeline
go test -run '^$' -fuzz '^FuzzOutlineMatchesParse$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ./pipeline/rawjson
go test -run '^$' -fuzz '^FuzzElementsMatchParse$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ./pipeline/rawjson
go test -run '^$' -fuzz '^FuzzCarryHeaders$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ./pipeline/broker
go test -run '^$' -fuzz '^FuzzUpstreamHeaders$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ./pipeline/runner
go test -run '^$' -fuzz '^FuzzTranslate$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ./translators/buildbot
go test -run '^$' -fuzz '^FuzzBuildKeyMatchesPattern$' -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" ./translators/buildbot
