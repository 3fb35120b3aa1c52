'use strict';
// fastfn Node worker: one process serves one function (docs/wire.md, docs/event.md).
//
// The supervisor hands us an already-listening unix socket on fd 3. We load the handler once, then answer framed
// requests (4-byte big-endian length + UTF-8 JSON object) on the event loop: requests are sequential within a
// connection and concurrent across connections. Per request we only decode, call, normalise and encode.
// CommonJS, standard library only.

const net = require('node:net');
const { pathToFileURL } = require('node:url');

const DEFAULT_MAX_FRAME = 8 * 1024 * 1024;
// Exit status after a handler ran the process out of descriptors: the supervisor starts a fresh worker.
const EXIT_EXHAUSTED = 3;
const ENVELOPE_KEYS = ['status', 'statusCode', 'headers', 'body', 'body_base64', 'is_base64', 'isBase64Encoded'];
const JSON_TYPE = 'application/json';

class InvalidResponse extends Error {}
InvalidResponse.prototype.name = 'InvalidResponse';

function encodeFrame(obj) {
  const json = JSON.stringify(obj);
  const length = Buffer.byteLength(json);
  const out = Buffer.allocUnsafe(4 + length);
  out.writeUInt32BE(length, 0);
  out.write(json, 4);
  return out;
}

function errorFrame(status, message) {
  return encodeFrame({ status, headers: { 'Content-Type': JSON_TYPE }, body: JSON.stringify({ error: message }) });
}

const TOO_LARGE = errorFrame(413, 'payload too large');
const BAD_FRAME = errorFrame(400, 'invalid request frame');
const PONG = encodeFrame({ op: 'pong', pid: process.pid });

// ---------------------------------------------------------------------------------------------------------------
// Loading the handler (once, before serving)

async function loadHandler(path, name) {
  let mod;
  try {
    mod = require(path);
  } catch (err) {
    // An ES module handler (.mjs, or "type": "module") cannot be require()d in Node 20: import it instead.
    if (!err || err.code !== 'ERR_REQUIRE_ESM') throw err;
    mod = await import(pathToFileURL(path).href);
  }
  const candidates = [
    mod && mod[name],
    mod && mod.default && mod.default[name],
    mod, // module.exports = function
    mod && mod.default, // export default function (ESM or transpiled)
  ];
  const fn = candidates.find((c) => typeof c === 'function');
  if (!fn) {
    const err = new TypeError(`${path} exports no function \`${name}\``);
    err.stack = `${err.name}: ${err.message}`; // a stack into this file would only mislead
    throw err;
  }
  // Decided once: a handler declaring (event, params) also gets the route parameters.
  return fn.length > 1 ? (event) => fn(event, event.params || {}) : fn;
}

// ---------------------------------------------------------------------------------------------------------------
// Normalising what the handler returns (docs/event.md "What a handler returns")

function isBinary(value) {
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer;
}

function toBase64(value) {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (value instanceof ArrayBuffer) return Buffer.from(value).toString('base64');
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
}

function toJson(value) {
  const text = JSON.stringify(value); // throws on cycles and BigInt: a handler error
  return text === undefined ? 'null' : text;
}

function normaliseHeaders(raw) {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidResponse(`response headers must be an object, got ${describe(raw)}`);
  }
  const out = {};
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined || value === null) continue; // an unset header, not the text "null"
    out[name] = Array.isArray(value) ? value.map(String) : String(value);
  }
  return out;
}

function hasContentType(headers) {
  return Object.keys(headers).some((k) => k.toLowerCase() === 'content-type');
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'number' ? String(value) : typeof value;
}

function normaliseEnvelope(res) {
  const status = res.status !== undefined ? res.status : res.statusCode !== undefined ? res.statusCode : 200;
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new InvalidResponse(`response status must be an integer 100..599, got ${JSON.stringify(status)}`);
  }
  const headers = normaliseHeaders(res.headers);
  const body = res.body;
  if (typeof res.body_base64 === 'string' && res.is_base64 !== false) {
    return { status, headers, is_base64: true, body_base64: res.body_base64 };
  }
  if (res.isBase64Encoded && typeof body === 'string') {
    return { status, headers, is_base64: true, body_base64: body };
  }
  if (body === undefined || body === null) return { status, headers, body: '' };
  if (typeof body === 'string') return { status, headers, body };
  if (isBinary(body)) return { status, headers, is_base64: true, body_base64: toBase64(body) };
  if (typeof body === 'object') {
    if (!hasContentType(headers)) headers['Content-Type'] = JSON_TYPE;
    return { status, headers, body: toJson(body) };
  }
  return { status, headers, body: String(body) };
}

// A fetch() Response: read it into an envelope. Textual types stay text, anything else is sent as binary.
async function unwrapFetchResponse(res) {
  const headers = {};
  res.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = res.headers.getSetCookie(); // forEach would join them with ", ", which breaks cookies
  if (cookies.length) headers['set-cookie'] = cookies;
  const bytes = Buffer.from(await res.arrayBuffer());
  const type = headers['content-type'] || '';
  const textual = bytes.length === 0 || /^text\/|json|xml|javascript|x-www-form-urlencoded/i.test(type);
  return { status: res.status, headers, body: textual ? bytes.toString('utf8') : bytes };
}

function normalise(result) {
  if (result === undefined || result === null) return { status: 200, headers: {}, body: '' };
  if (typeof result === 'string') {
    const type = /^\s*</.test(result) ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8';
    return { status: 200, headers: { 'Content-Type': type }, body: result };
  }
  if (typeof result === 'number' || typeof result === 'boolean' || typeof result === 'bigint') {
    return { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: String(result) };
  }
  if (isBinary(result)) {
    return {
      status: 200,
      headers: { 'Content-Type': 'application/octet-stream' },
      is_base64: true,
      body_base64: toBase64(result),
    };
  }
  if (typeof result === 'object') {
    if (!Array.isArray(result) && ENVELOPE_KEYS.some((k) => k in result)) return normaliseEnvelope(result);
    return { status: 200, headers: { 'Content-Type': JSON_TYPE }, body: toJson(result) };
  }
  throw new InvalidResponse(`handler response cannot be sent, got ${typeof result}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Serving

function requestIdOf(event) {
  if (typeof event.id === 'string') return event.id;
  const ctx = event.context;
  return ctx && typeof ctx.request_id === 'string' ? ctx.request_id : '-';
}

function errorDetail(err) {
  if (err instanceof Error || (err && typeof err.message === 'string')) {
    return `${err.name || 'Error'}: ${err.message}`;
  }
  return `thrown ${describe(err)}: ${String(err)}`;
}

// The dev-mode error detail goes back to the client: hide any env value it quotes (the worker cannot tell secret
// values from plain ones, so it hides them all; the supervisor masks logs itself).
function maskEnvValues(text, event) {
  const env = event && typeof event.env === 'object' && event.env !== null ? event.env : null;
  if (!env) return text;
  const values = Object.values(env).filter((v) => typeof v === 'string' && v.length >= 4).sort((a, b) => b.length - a.length);
  for (const value of values) text = text.split(value).join('<hidden>');
  return text;
}

// The request a handler serves, so its console output can be told apart in the log. AsyncLocalStorage follows a
// request across awaits, but in Node 20 it slows every promise (about 15 % of a hello call), so it is switched on
// only once a handler has written to the console: until then, a line is tagged with the request whose synchronous
// part is running (`syncRequest`), which is exact for the first line of a handler that logs before its first await.
const { AsyncLocalStorage } = require('async_hooks');
const currentRequest = new AsyncLocalStorage();
let tracking = false;
let syncRequest;

// Every console line a handler writes starts with its request id (the supervisor adds the function name).
function tagConsole() {
  for (const method of ['log', 'info', 'debug', 'warn', 'error', 'trace']) {
    const original = console[method].bind(console);
    console[method] = (...args) => {
      const id = tracking ? currentRequest.getStore() : syncRequest;
      tracking = true;
      if (id === undefined) return original(...args);
      return original(`[${id}]`, ...args);
    };
  }
}

function createWorker({ handler, loadError, dev, maxFrame }) {
  // For the idle timeout: requests in progress and when the last one ended.
  const state = { busy: 0, lastActive: Date.now(), exhausted: false };
  function internalError(requestId, detail, event) {
    const payload = { error: 'internal error', request_id: requestId };
    if (dev && detail) payload.detail = maskEnvValues(detail, event);
    return encodeFrame({ status: 500, headers: { 'Content-Type': JSON_TYPE }, body: JSON.stringify(payload) });
  }

  async function handleEvent(event) {
    state.busy += 1;
    try {
      return await handleEventInner(event);
    } finally {
      state.busy -= 1;
      state.lastActive = Date.now();
    }
  }

  async function handleEventInner(event) {
    const requestId = requestIdOf(event);
    if (tracking) return currentRequest.run(requestId, () => callHandler(event, requestId));
    syncRequest = requestId;
    try {
      return callHandler(event, requestId); // its synchronous part runs now, inside this try
    } finally {
      syncRequest = undefined;
    }
  }

  async function callHandler(event, requestId) {
    if (!handler) return internalError(requestId, loadError);
    let result;
    try {
      result = await handler(event);
      if (typeof Response === 'function' && result instanceof Response) result = await unwrapFetchResponse(result);
    } catch (err) {
      process.stderr.write(`[${requestId}] ${err && err.stack ? err.stack : errorDetail(err)}\n`);
      if (err && (err.code === 'EMFILE' || err.code === 'ENFILE') && !state.exhausted) {
        // Leaked descriptors stay leaked: answer this request, then exit so the supervisor starts a fresh worker.
        state.exhausted = true;
        process.stderr.write(`[${requestId}] fastfn: worker out of file descriptors; it exits after answering\n`);
      }
      return internalError(requestId, errorDetail(err), event);
    }
    try {
      return encodeFrame(normalise(result));
    } catch (err) {
      // Our own validation, or JSON.stringify of the body: the message says it all, the stack is ours.
      const detail = errorDetail(err);
      process.stderr.write(`[${requestId}] ${detail}\n`);
      return internalError(requestId, detail, event);
    }
  }

  // Answer one request frame: resolves to [bytes to send, keep the connection open].
  async function reply(body) {
    let request;
    try {
      request = JSON.parse(body.toString('utf8')); // lenient: stray invalid bytes become U+FFFD
    } catch {
      return [BAD_FRAME, false];
    }
    if (request === null || typeof request !== 'object' || Array.isArray(request)) return [BAD_FRAME, false];
    const event = request.event;
    if (event !== null && typeof event === 'object' && !Array.isArray(event)) return [await handleEvent(event), true];
    if (request.op === 'ping') return [PONG, true];
    return [BAD_FRAME, false];
  }

  // Per-connection incremental frame parser. Incoming chunks are queued and joined only once a whole header or
  // body is available, so a large frame arriving in many chunks is copied once.
  function serveConnection(sock) {
    const chunks = [];
    let buffered = 0;
    let busy = false; // a request is being handled: later frames wait (sequential per connection)
    let done = false; // we answered a fatal frame or the socket closed: ignore anything else
    let peerEnded = false;

    function take(n) {
      if (chunks[0].length === n) {
        buffered -= n;
        return chunks.shift();
      }
      if (chunks[0].length > n) {
        const head = chunks[0].subarray(0, n);
        chunks[0] = chunks[0].subarray(n);
        buffered -= n;
        return head;
      }
      const out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = chunks[0];
        const used = Math.min(chunk.length, n - filled);
        chunk.copy(out, filled, 0, used);
        filled += used;
        if (used === chunk.length) chunks.shift();
        else chunks[0] = chunk.subarray(used);
      }
      buffered -= n;
      return out;
    }

    function finish(lastReply) {
      // end() flushes what is queued (a response just written, or the last reply) before we close for good.
      done = true;
      if (lastReply) sock.end(lastReply, () => sock.destroy());
      else sock.end(() => sock.destroy());
    }

    function pump() {
      while (!busy && !done) {
        if (buffered < 4) {
          if (peerEnded) finish(null); // peer closed between frames (or mid-header): nothing to answer
          return;
        }
        if (chunks[0].length < 4) chunks.splice(0, chunks.length, Buffer.concat(chunks)); // header split: join once
        const length = chunks[0].readUInt32BE(0);
        if (length > maxFrame) return finish(TOO_LARGE); // answer without reading the body, then close
        if (length < 2) return finish(null);
        if (buffered < 4 + length) {
          if (peerEnded) finish(null);
          return;
        }
        take(4);
        const body = take(length);
        busy = true;
        reply(body).then(
          ([answer, keep]) => {
            busy = false;
            if (done || sock.destroyed) return;
            if (!keep) return finish(answer);
            if (state.exhausted) {
              sock.write(answer, () => process.exit(EXIT_EXHAUSTED));
              return;
            }
            sock.write(answer);
            pump();
          },
          () => sock.destroy(), // not reached: reply() turns every failure into a response
        );
      }
    }

    sock.on('data', (chunk) => {
      if (done) return;
      chunks.push(chunk);
      buffered += chunk.length;
      pump();
    });
    sock.on('end', () => {
      peerEnded = true; // half-close: finish the request in flight, answer it, then close
      pump();
    });
    sock.on('close', () => {
      done = true;
    });
    sock.on('error', () => {}); // peer reset: nobody left to answer, and 'close' follows
  }

  return { serveConnection, state };
}

// ---------------------------------------------------------------------------------------------------------------

function fail(message) {
  process.stderr.write(`fastfn node worker: ${message}\n`);
  process.exit(2);
}

async function main() {
  const env = process.env;
  const missing = ['FN_WORKER_LISTEN_FD', 'FN_HANDLER_PATH'].filter((name) => !env[name]);
  if (missing.length) {
    fail(`${missing.join(' and ')} not set; this program is started by the fastfn supervisor`);
  }
  const fd = Number(env.FN_WORKER_LISTEN_FD);
  if (!Number.isInteger(fd) || fd < 0) fail(`FN_WORKER_LISTEN_FD=${env.FN_WORKER_LISTEN_FD} is not a descriptor`);
  const maxFrame = Number.parseInt(env.FN_MAX_FRAME_BYTES, 10) || DEFAULT_MAX_FRAME;
  const name = env.FN_HANDLER_NAME || 'handler';
  const path = env.FN_HANDLER_PATH;

  let server = null;
  const terminate = () => {
    // Stop accepting, then exit at once: the supervisor drains before it signals, and writes to stdout/stderr
    // pipes are synchronous on Linux, so nothing the handler printed is lost.
    if (server) server.close();
    process.exit(0);
  };
  process.on('SIGTERM', terminate);
  process.on('SIGINT', terminate);
  // A promise the handler forgot about must not take every other request down with the process.
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`unhandled rejection: ${reason && reason.stack ? reason.stack : String(reason)}\n`);
  });

  let handler = null;
  let loadError = null;
  try {
    handler = await loadHandler(path, name);
  } catch (err) {
    loadError = errorDetail(err);
    process.stderr.write(
      `fastfn: cannot load handler of \`${env.FN_FUNCTION_NAME || ''}\` from ${path}:\n` +
        `${err && err.stack ? err.stack : loadError}\n`,
    );
  }

  tagConsole();
  const worker = createWorker({ handler, loadError, dev: env.FN_MODE === 'dev', maxFrame });
  server = net.createServer({ allowHalfOpen: true }, worker.serveConnection);
  server.on('error', (err) => fail(`FN_WORKER_LISTEN_FD=${fd} is not a listening socket: ${err.message}`));
  server.listen({ fd });

  // With an idle timeout, check once a second; exit 0 tells the supervisor "idle", not "crashed".
  const idleTtlMs = Math.max(0, Number.parseInt(env.FN_IDLE_TTL_SECONDS, 10) || 0) * 1000;
  if (idleTtlMs > 0) {
    setInterval(() => {
      if (worker.state.busy === 0 && Date.now() - worker.state.lastActive >= idleTtlMs) process.exit(0);
    }, 1000).unref();
  }
}

main();
