// A Pulse consumer as taskcluster services write one, on
// taskcluster-lib-pulse: its queue queue/<namespace>/<name>, a binding
// with the exchange's routing-key reference (from `pulsetranslator docs
// --format json`), so that the library parses each routing key into named
// words, and the CC routes it reports.
//
// Usage: node tclp_consumer.js CONFIG_JSON, with url, namespace, exchange,
// pattern, reference, queue, want. Prints "ready" once the queue is bound,
// then one JSON line per message; exits after `want` messages, or with
// status 1 when they do not all come within 60 s.
const {Client, consume, connectionStringCredentials} = require('taskcluster-lib-pulse');

const cfg = JSON.parse(process.argv[2]);
const client = new Client({
  namespace: cfg.namespace,
  credentials: connectionStringCredentials(cfg.url),
  monitor: {reportError: err => console.error('reportError:', err && err.stack || err)},
});
let received = 0;
setTimeout(() => {
  console.error(`only ${received} of ${cfg.want} messages within 60s`);
  process.exit(1);
}, 60000).unref();

(async () => {
  const consumer = await consume({
    client,
    queueName: cfg.queue,
    bindings: [{exchange: cfg.exchange, routingKeyPattern: cfg.pattern, routingKeyReference: cfg.reference}],
  }, async message => {
    console.log(JSON.stringify({
      exchange: message.exchange,
      routingKey: message.routingKey,
      routing: message.routing,
      routes: message.routes,
      payload: message.payload.payload,
    }));
    if (++received === cfg.want) {
      // Stopping the consumer closes its channel once the message is
      // acknowledged; the client's own stop would wait out its retirement
      // delay.
      setImmediate(async () => {
        await consumer.stop();
        process.exit(0);
      });
    }
  });
  console.log('ready');
})().catch(err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
