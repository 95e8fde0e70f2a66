"""A Pulse consumer as Python tools write one, on kombu (what mozillapulse
is built on): a durable queue of the consumer's own, bound to a topic
exchange it may only read (so declared passively), each message decoded by
kombu from its content type and acknowledged.

Usage: kombu_consumer.py CONFIG_JSON, with host, port, user, password,
exchange, queue, routing_key, want. Prints "ready" once the queue is bound,
then one JSON line per message; exits after `want` messages, or with
status 1 when none comes for 60 s.
"""
import json
import socket
import sys

from kombu import Connection, Consumer, Exchange, Queue

cfg = json.loads(sys.argv[1])
conn = Connection(hostname=cfg["host"], port=cfg["port"], userid=cfg["user"],
                  password=cfg["password"], virtual_host="/")
exchange = Exchange(cfg["exchange"], type="topic", passive=True)
queue = Queue(cfg["queue"], exchange=exchange, routing_key=cfg["routing_key"],
              durable=True, auto_delete=False)
received = []


def on_message(body, message):
    received.append({
        "exchange": message.delivery_info["exchange"],
        "routing_key": message.delivery_info["routing_key"],
        "content_type": message.content_type,
        "payload_type": type(body).__name__,
        "payload": body.get("payload") if isinstance(body, dict) else None,
        "cc": message.headers.get("CC"),
    })
    print(json.dumps(received[-1]), flush=True)
    message.ack()


with conn:
    channel = conn.channel()
    queue(channel).declare()
    with Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"]):
        print("ready", flush=True)
        while len(received) < cfg["want"]:
            try:
                conn.drain_events(timeout=60)
            except socket.timeout:
                print("no message for 60s", file=sys.stderr, flush=True)
                sys.exit(1)
