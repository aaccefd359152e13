#!/usr/bin/env node
// Submit one trade intent to tradeops from Node.js, as the `client` identity.
//
//   node submit.mjs --url tls://127.0.0.1:4222 --certs .tradeops/certs \
//       --symbol BTC-USD --side buy --quantity 0.5 --rationale "rebalance after the close"
//
// What it shows (docs/clients.md explains each point):
// - mutual TLS with the identity's certificate: ca.pem, client.pem, client-key.pem;
// - the identity's private inbox prefix, `_INBOX.client`: the server lets the client identity
//   subscribe to `_INBOX.client.>` only, and a JetStream publish waits for its ack there;
// - a SubmitIntent body that follows the JSON Schema (`tradeops contracts export DIR`), with the
//   client's own `intent_id`, published on `intent.submitted.<SYMBOL>`;
// - a JetStream publish with `Nats-Msg-Id` = the intent id, so a retried publish is stored once.
//
// - the outcome: the client may read no stream, so it asks, with a request on `intent.outcome`
//   (`{"intent_id": ...}`), answered by the stack from the same trail `tradeops intent show` reads.
//
// It prints one JSON line with the intent id and the publish ack (stream, seq, duplicate), then,
// unless --wait-ms 0, one JSON line with the outcome. Exit codes (as `tradeops intent submit
// --wait`): 0 filled (or stored, with --wait-ms 0), 1 no ack (refused, or unknown: publish again
// with the same --intent-id), 2 bad usage, 10 rejected, 11 dead-lettered, 12 no terminal outcome
// within --wait-ms, 13 handed over (its dead letter was retried as another message).

import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { connect, JSONCodec } from "nats";

const SUBMIT_SUBJECT = "intent.submitted"; // + "." + symbol
const OUTCOME_SUBJECT = "intent.outcome"; // request/reply: {"intent_id": ...} -> the outcome
const EXIT_OF_OUTCOME = { filled: 0, rejected: 10, dead_lettered: 11, handed_over: 13 };
const TIMED_OUT = 12;
const ASK_EVERY_MS = 200;
const INBOX_PREFIX = "_INBOX.client"; // `_INBOX.<identity>`: the only inbox the server allows
const IDENTITY = "client";

const USAGE = `usage: node submit.mjs --url URL --certs DIR --symbol SYM --side buy|sell --quantity Q
    [--account paper-1] [--limit PRICE] [--strategy NAME] [--rationale TEXT] [--intent-id UUID]
    [--identity client] [--inbox-prefix _INBOX.client] [--timeout-ms 10000] [--wait-ms 30000]
    [--dry-run]
  --certs DIR  the directory holding ca.pem, <identity>.pem and <identity>-key.pem
               (or give --ca, --cert and --key one by one)
  --wait-ms N  ask the outcome until it is final, at most N ms (0: print the ack only)
  --dry-run    print the intent's JSON body and exit without connecting`;

function fail(message, code = 2) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        url: { type: "string" },
        certs: { type: "string" },
        ca: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        identity: { type: "string", default: IDENTITY },
        "inbox-prefix": { type: "string" },
        symbol: { type: "string" },
        side: { type: "string" },
        quantity: { type: "string" },
        account: { type: "string", default: "paper-1" },
        limit: { type: "string" },
        strategy: { type: "string" },
        rationale: { type: "string" },
        "intent-id": { type: "string" },
        "timeout-ms": { type: "string", default: "10000" },
        "wait-ms": { type: "string", default: "30000" },
        "dry-run": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (err) {
    fail(`${err.message}\n${USAGE}`);
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  for (const name of ["symbol", "side", "quantity"]) {
    if (!parsed[name]) fail(`--${name} is required\n${USAGE}`);
  }
  return parsed;
}

// The body, as `intent.submitted.schema.json` describes SubmitIntent: decimals are strings,
// unknown fields are refused, `limit_price` only (and always) for a limit order.
function intentOf(opts) {
  const body = {
    intent_id: opts["intent-id"] ?? randomUUID(),
    account: opts.account,
    symbol: opts.symbol,
    side: opts.side,
    quantity: opts.quantity,
    order_type: opts.limit ? "limit" : "market",
  };
  if (opts.limit) body.limit_price = opts.limit;
  if (opts.strategy) body.strategy = opts.strategy;
  if (opts.rationale) body.rationale = opts.rationale;
  return body;
}

function tlsOf(opts) {
  const dir = opts.certs;
  const pick = (given, file) => given ?? (dir ? join(dir, file) : undefined);
  const tls = {
    caFile: pick(opts.ca, "ca.pem"),
    certFile: pick(opts.cert, `${opts.identity}.pem`),
    keyFile: pick(opts.key, `${opts.identity}-key.pem`),
  };
  if (!tls.caFile || !tls.certFile || !tls.keyFile) {
    fail(`give --certs DIR, or all of --ca, --cert and --key\n${USAGE}`);
  }
  return tls;
}

// Ask `intent.outcome` until the answer is final or `waitMs` has passed; return the last answer.
// An `unknown` answer right after the ack is normal: the ingestor has not read the submission yet.
async function awaitOutcome(nc, intentId, waitMs, timeout) {
  const codec = JSONCodec();
  const deadline = Date.now() + waitMs;
  let last = { intent_id: intentId, outcome: "unknown", terminal: false, reasons: [] };
  while (Date.now() < deadline) {
    try {
      const reply = await nc.request(OUTCOME_SUBJECT, codec.encode({ intent_id: intentId }), {
        timeout: Math.min(timeout, Math.max(deadline - Date.now(), 1)),
      });
      const answer = codec.decode(reply.data);
      if (answer.error) throw new Error(`outcome service: ${answer.error}`);
      last = answer;
      if (answer.terminal) return last;
    } catch (err) {
      // no responder yet, a timeout, or `busy`: ask again until the deadline
      if (err.message.startsWith("outcome service: invalid")) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, ASK_EVERY_MS));
  }
  return last;
}

async function main() {
  const opts = options();
  const intent = intentOf(opts);
  if (opts["dry-run"]) {
    process.stdout.write(`${JSON.stringify(intent)}\n`);
    return 0;
  }
  if (!opts.url) fail(`--url is required\n${USAGE}`);
  const timeout = Number(opts["timeout-ms"]);

  const nc = await connect({
    servers: opts.url,
    tls: tlsOf(opts),
    inboxPrefix:
      opts["inbox-prefix"] ??
      (opts.identity === IDENTITY ? INBOX_PREFIX : `_INBOX.${opts.identity}`),
    name: `node-client ${opts.identity}`,
    timeout,
    maxReconnectAttempts: 3,
  });
  // A denied publish or subscription is reported asynchronously; say so rather than time out.
  (async () => {
    for await (const status of nc.status()) {
      if (status.type === "error") process.stderr.write(`nats: ${status.data}\n`);
    }
  })();

  try {
    const js = nc.jetstream({ timeout });
    let ack;
    try {
      // `msgID` sets the `Nats-Msg-Id` header: a publish retried within the SUBMISSIONS stream's
      // duplicate window (2 minutes) is stored once, and its ack says `duplicate: true`.
      ack = await js.publish(`${SUBMIT_SUBJECT}.${intent.symbol}`, JSONCodec().encode(intent), {
        msgID: intent.intent_id,
        timeout,
      });
    } catch (err) {
      // No ack. Refused (a permissions violation, "message size exceeds maximum allowed") or lost
      // on the way back: the intent may or may not be stored. Publishing the same body with the
      // same intent id again is safe: it is stored and executed at most once.
      process.stderr.write(`no publish ack: ${err.code ?? ""} ${err.message}\n`);
      return 1;
    }
    process.stdout.write(
      `${JSON.stringify({
        intent_id: intent.intent_id,
        stream: ack.stream,
        seq: ack.seq,
        duplicate: ack.duplicate,
      })}\n`,
    );
    const waitMs = Number(opts["wait-ms"]);
    if (!(waitMs > 0)) return 0;
    const answer = await awaitOutcome(nc, intent.intent_id, waitMs, timeout);
    process.stdout.write(`${JSON.stringify(answer)}\n`);
    return answer.terminal ? (EXIT_OF_OUTCOME[answer.outcome] ?? 1) : TIMED_OUT;
  } finally {
    await nc.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => fail(`error: ${err.message}`, 1),
);
