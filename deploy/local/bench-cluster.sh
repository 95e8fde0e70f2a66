#!/usr/bin/env bash
# Measures what a cluster costs: pulsebench on the local broker (one node,
# classic queues), then on a three-node cluster of this machine
# (cluster.sh) with quorum queues, the workers connected to the list of its
# nodes. Both report the translator next to the bare baseline. Extra
# arguments go to both pulsebench runs, for example: -n 20000 -runs 3.
# On one machine the three nodes share its CPUs, so the cluster is slower;
# what it buys is surviving the loss of a node (TestClusterNodeLoss).
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/local/broker.sh
ensure_broker
bin="$(mktemp -d)"
dir="$(mktemp -d /tmp/pulsebench-cluster-XXXXXX)"
chmod 755 "$dir"
trap 'deploy/local/cluster.sh stop "$dir/cluster" >/dev/null 2>&1 || true; rm -rf "$bin" "$dir"' EXIT
go build -o "$bin/pulsetranslator" ./cmd/pulsetranslator
go build -o "$bin/pulsebench" ./cmd/pulsebench

echo "== one node, classic queues"
"$bin/pulsebench" -translator "$bin/pulsetranslator" -queue-type classic "$@"

echo "== three nodes, quorum queues"
nodes=""
while read -r _ port; do
  nodes="${nodes:+$nodes,}amqp://guest:guest@127.0.0.1:$port/"
done < <(deploy/local/cluster.sh start "$dir/cluster" 3)
"$bin/pulsebench" -translator "$bin/pulsetranslator" -queue-type quorum -broker "$nodes" "$@"
