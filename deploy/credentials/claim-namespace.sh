#!/bin/sh
# A connection_command for Taskcluster's Pulse service: claims (or claims
# again) a namespace and prints its connection string with the time by
# which to claim again, as pulsetranslator reads it:
#   {"connection": "amqps://…", "expires": "<reclaimAt>"}
# pulsetranslator runs it at every connect and again a tenth of the
# credentials' life before reclaimAt.
#
# Needs the taskcluster command-line client (which signs the request with
# TASKCLUSTER_ROOT_URL, TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN
# from the environment) and jq. Use it in the config as
#   connection_command: [/usr/local/bin/claim-namespace.sh, my-namespace]
# What it writes to standard error is logged, passwords hidden.
set -eu
namespace=${1:?usage: claim-namespace.sh NAMESPACE [CONTACT]}
contact=${2:-}
expires=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
request=$(jq -n --arg expires "$expires" --arg contact "$contact" '{expires: $expires, contact: $contact}')
echo "claiming the Pulse namespace $namespace" >&2
echo "$request" | taskcluster api pulse claimNamespace "$namespace" |
  jq '{connection: .connectionString, expires: .reclaimAt}'
