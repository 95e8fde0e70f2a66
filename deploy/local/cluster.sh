#!/usr/bin/env bash
# A RabbitMQ cluster of several nodes on this one machine, each with its own
# node name, ports and data directory under DIR, beside (not instead of) the
# broker on 5672: for trying quorum queues and losing a node, and for the
# cluster test and benchmark. Needs Debian's rabbitmq-server and root (the
# nodes run as the rabbitmq user, whose Erlang cookie rabbitmqctl uses).
#
#   cluster.sh start DIR [N]     start N nodes (default 3) and cluster them;
#                                prints "NAME AMQP_PORT" per node
#   cluster.sh stop DIR          stop every node and remove DIR
#   cluster.sh stop-node DIR I   stop node I (1..N) cleanly, as an operator would
#   cluster.sh kill-node DIR I   kill node I with SIGKILL
#   cluster.sh start-node DIR I  start node I again; it rejoins the cluster
#   cluster.sh leader DIR QUEUE  the name of the node that leads QUEUE
#   cluster.sh ctl DIR I ARGS    rabbitmqctl ARGS against node I
#   cluster.sh queues DIR I ARGS rabbitmq-queues ARGS against node I, for
#                                example check_if_node_is_quorum_critical
set -euo pipefail

server=/usr/lib/rabbitmq/bin/rabbitmq-server
ctl=/usr/lib/rabbitmq/bin/rabbitmqctl
queues=/usr/lib/rabbitmq/bin/rabbitmq-queues

die() { echo "cluster.sh: $*" >&2; exit 1; }

as_rabbit() { su rabbitmq -s /bin/sh -c "cd /var/lib/rabbitmq && HOME=/var/lib/rabbitmq $*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

node_name() { cat "$1/node$2/name"; }

ctl_node() {
  local dir=$1 i=$2; shift 2
  as_rabbit "$ctl -q -n $(node_name "$dir" "$i") $*"
}

start_node() {
  local dir=$1 i=$2
  as_rabbit "$(cat "$dir/node$i/env") $server -detached" >/dev/null 2>&1 \
    || die "node $i did not start; see $dir/node$i/log"
}

await_node() {
  local dir=$1 i=$2
  for _ in $(seq 1 90); do
    if ctl_node "$dir" "$i" await_startup >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "cluster.sh: the end of node $i's logs:" >&2
  tail -n 20 "$dir/node$i"/log/*.log >&2 2>/dev/null || true
  die "node $i ($(node_name "$dir" "$i")) did not start within 90s; see $dir/node$i/log"
}

start() {
  local dir=$1 n=${2:-3}
  [ -x "$server" ] || die "needs Debian's rabbitmq-server (apt-get install rabbitmq-server)"
  [ "$(id -u)" -eq 0 ] || die "needs root (the nodes run as the rabbitmq user)"
  [ ! -e "$dir/nodes" ] || die "$dir already holds a cluster; stop it first"
  mkdir -p "$dir"
  chmod 755 "$dir"
  as_rabbit "test -x '$dir'" || die "the rabbitmq user cannot reach $dir: choose a directory whose parents it may enter (not a private temporary directory)"
  local id=$RANDOM
  : >"$dir/nodes"
  for i in $(seq 1 "$n"); do
    local d=$dir/node$i port dist
    port=$(free_port)
    dist=$(free_port)
    install -d -o rabbitmq "$d" "$d/mnesia" "$d/log"
    echo "ptc$i-$id@localhost" >"$d/name"
    echo "$port" >"$d/port"
    # pause_minority: a node cut off from the majority pauses itself
    # (closing its clients' connections, so they move to the majority)
    # instead of going on as a second cluster, as the default "ignore"
    # does; quorum queues need a majority anyway, so the minority has
    # nothing to serve. An 80 s hang left a test cluster split in two
    # under "ignore". queue_leader_locator balanced spreads the queues'
    # leaders over the nodes, so that one node's death rarely moves the
    # input queue's leader and a wait queue's at once (docs/cluster.md).
    printf 'listeners.tcp.default = %s\nloopback_users = none\ncluster_partition_handling = pause_minority\nqueue_leader_locator = balanced\n' "$port" >"$d/rabbitmq.conf"
    echo '[].' >"$d/plugins"
    echo "RABBITMQ_NODENAME=ptc$i-$id@localhost RABBITMQ_DIST_PORT=$dist RABBITMQ_CONFIG_FILE=$d/rabbitmq RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_ENABLED_PLUGINS_FILE=$d/plugins RABBITMQ_PID_FILE=$d/pid" >"$d/env"
    start_node "$dir" "$i"
  done
  for i in $(seq 1 "$n"); do await_node "$dir" "$i"; done
  local first
  first=$(node_name "$dir" 1)
  for i in $(seq 2 "$n"); do
    ctl_node "$dir" "$i" stop_app >/dev/null
    ctl_node "$dir" "$i" join_cluster "$first" >/dev/null
    ctl_node "$dir" "$i" start_app >/dev/null
  done
  for i in $(seq 1 "$n"); do
    await_node "$dir" "$i"
    echo "$(node_name "$dir" "$i") $(cat "$dir/node$i/port")" | tee -a "$dir/nodes"
  done
}

stop() {
  local dir=$1
  [ -e "$dir/nodes" ] || die "$dir holds no cluster"
  for d in "$dir"/node*/; do
    local i=${d%/}; i=${i##*/node}
    ctl_node "$dir" "$i" stop >/dev/null 2>&1 || true
    if [ -s "$d/pid" ]; then kill -9 "$(cat "$d/pid")" 2>/dev/null || true; fi
  done
  rm -rf "$dir"
}

case "${1:-}" in
  start) [ $# -ge 2 ] || die "usage: cluster.sh start DIR [N]"; start "$2" "${3:-3}" ;;
  stop) [ $# -eq 2 ] || die "usage: cluster.sh stop DIR"; stop "$2" ;;
  stop-node) ctl_node "$2" "$3" stop >/dev/null ;;
  kill-node) kill -9 "$(cat "$2/node$3/pid")" ;;
  start-node) start_node "$2" "$3"; await_node "$2" "$3" ;;
  leader)
    # Asked of the first node that answers.
    for d in "$2"/node*/; do
      i=${d%/}; i=${i##*/node}
      if out=$(ctl_node "$2" "$i" list_queues name leader --no-table-headers 2>/dev/null); then
        echo "$out" | awk -v q="$3" '$1 == q { print $2 }'
        exit 0
      fi
    done
    die "no node answers" ;;
  ctl) dir=$2 i=$3; shift 3; ctl_node "$dir" "$i" "$@" ;;
  queues) dir=$2 i=$3; shift 3; as_rabbit "$queues -q -n $(node_name "$dir" "$i") $*" ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
