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
go test -run '^$' -bench . -benchtime 1x ./pipeline/internal/process ./pipeline/internal/rawjson ./translators/... ./schemas ./rules
# Fuzz the envelope decoder, the outline and array elements of checked
# bodies, upstream header tables (what a copy carries, and what the runner
# makes of them), the buildbot translator and its build-key matcher, and
# terminal-safe output of upstream JSON; a
# crasher fails the run and is written to the package's testdata/fuzz, to
# be fixed and kept as a regression case. Each runs a count of inputs,
# about 15 s on a slow day for this machine, not a duration: with a
# duration, Go's fuzzing coordinator can report its own deadline as a
# failure ("context deadline exceeded", no crasher; golang/go#75804, not
# fixed in Go 1.26). FUZZTIME (a duration or a count such as 100000x)
# overrides every count.
# Minimizing each new input for go test's default minute spent the whole
# fuzz time of the translator (corpus bodies are 16 KB) on a few inputs:
# a hundred tries each keeps it fuzzing.
minimize="${FUZZMINIMIZE:-100x}"
fuzz() { # target package count
	go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-$3}" -fuzzminimizetime "$minimize" "$2"
}
fuzz FuzzDecode ./pipeline/internal/process 100000x
fuzz FuzzOutlineMatchesParse ./pipeline/internal/rawjson 450000x
fuzz FuzzElementsMatchParse ./pipeline/internal/rawjson 550000x
fuzz FuzzCarryHeaders ./pipeline/internal/broker 100000x
fuzz FuzzUpstreamHeaders ./pipeline/internal/runner 60000x
fuzz FuzzTranslate ./translators/buildbot 60000x
fuzz FuzzBuildKeyMatchesPattern ./translators/buildbot 50000x
fuzz FuzzJSON ./pipeline/internal/termtext 200000x
