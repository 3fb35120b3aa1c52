'use strict';
// Tests of the Node worker, run as a real process on a real unix socket handed over as fd 3 by
// runtimes/testing/launch_with_socket.py (Node cannot pass a listening socket to a child as fd 3 by itself).
//
//   node --test runtimes/node/

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const PYTHON = process.env.FASTFN_PYTHON || (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const LAUNCHER = path.join(__dirname, '..', 'testing', 'launch_with_socket.py');
const WORKER = path.join(__dirname, 'worker.js');
const DEADLINE_MS = 10000; // longest wait for any observable event

// One handler file serves most cases: `handler` dispatches on the event path, so one worker covers every return
// shape. Other exports are picked with FN_HANDLER_NAME.
const HANDLERS = `
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const cases = {
  object: (e) => ({ hello: 'wörld', method: e.method }),
  array: () => [1, 'two'],
  string: () => 'plain text',
  html: () => '  <h1>hi</h1>',
  number: () => 42,
  boolean: () => false,
  null: () => null,
  undefined: () => undefined,
  buffer: () => Buffer.from([0x89, 0x50, 0x4e, 0x47, 0]),
  uint8: () => new Uint8Array([0, 1]),
  envelope: () => ({ status: 201, headers: { 'X-Multi': ['a', 2], 'X-Num': 5, 'X-Null': null }, body: 'made' }),
  status_code: () => ({ statusCode: 202, body: { ok: true } }),
  own_type: () => ({ status: 200, headers: { 'content-type': 'application/vnd.api+json' }, body: [1] }),
  env_buffer: () => ({ status: 200, headers: { 'Content-Type': 'image/png' }, body: Buffer.from('iVBORwA=', 'base64') }),
  b64_alias: () => ({ statusCode: 200, isBase64Encoded: true, body: 'AAE=' }),
  b64_pair: () => ({ status: 200, is_base64: true, body_base64: 'AAE=' }),
  null_body: () => ({ status: 204, body: null }),
  number_body: () => ({ status: 200, body: 7 }),
  status_600: () => ({ status: 600, body: '' }),
  status_str: () => ({ status: '200', body: '' }),
  status_float: () => ({ status: 200.5, body: '' }),
  circular: () => { const o = { a: 1 }; o.self = o; return o; },
  symbol: () => Symbol('x'),
  fetch_text: () => new Response('made', {
    status: 201, headers: { 'content-type': 'text/plain', 'set-cookie': 'a=1' },
  }),
  fetch_binary: () => new Response(new Uint8Array([0, 1]), { headers: { 'content-type': 'image/png' } }),
  boom: () => { throw new RangeError('kaboom'); },
  reject: async () => { await sleep(1); throw new Error('async kaboom'); },
  throw_string: () => { throw 'just a string'; },
  sleep: async (e) => { await sleep(Number(e.query.s) * 1000); return { slept: Number(e.query.s) }; },
  print: () => { console.log('hello from handler'); return { printed: true }; },
  async_ok: async (e) => { await sleep(1); return { async: true, path: e.path }; },
};
exports.handler = (event) => cases[event.path.slice(1)](event);
exports.withParams = (event, params) => ({ id: params.id, same: params === event.params });
exports.asyncHandler = async (event) => { await sleep(1); return { async: true, path: event.path }; };
exports.notAFunction = 3;
`;

function event(p = '/object', extra = {}) {
  return { id: 'req-1-2-000001', method: 'GET', path: p, query: {}, params: {}, headers: {}, ...extra };
}

function encodeFrame(obj) {
  const body = Buffer.from(JSON.stringify(obj));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

function rawFrame(text) {
  const body = Buffer.from(text);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

// A framed client: next() resolves to the next frame, or null once the worker closed the connection.
class Client {
  static connect(sockPath) {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(sockPath);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new Client(sock));
      });
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    sock.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32BE(0)) {
        const n = this.buf.readUInt32BE(0);
        this.push(JSON.parse(this.buf.subarray(4, 4 + n).toString('utf8')));
        this.buf = this.buf.subarray(4 + n);
      }
    });
    sock.on('error', () => {}); // a reset after the last frame is a close
    sock.on('close', () => {
      this.closed = true;
      while (this.waiters.length) this.waiters.shift()(null);
    });
  }

  push(frame) {
    if (this.waiters.length) this.waiters.shift()(frame);
    else this.frames.push(frame);
  }

  next() {
    if (this.frames.length) return Promise.resolve(this.frames.shift());
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no frame before the deadline')), DEADLINE_MS);
      this.waiters.push((frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
    });
  }

  send(obj) {
    this.sock.write(encodeFrame(obj));
  }

  close() {
    this.sock.destroy();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function startWorker({ source = HANDLERS, name, mode = 'run', files = {}, filename = 'handler.js' } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fastfn-nodeworker-'));
  const fnDir = path.join(dir, 'fn');
  fs.mkdirSync(fnDir);
  for (const [file, text] of Object.entries({ ...files, [filename]: source })) {
    fs.writeFileSync(path.join(fnDir, file), text);
  }
  const sockPath = path.join(dir, 'worker.sock');
  const env = {
    PATH: process.env.PATH,
    FN_RUNTIME: 'node',
    FN_FUNCTION_NAME: 'node/test',
    FN_FUNCTION_DIR: fnDir,
    FN_HANDLER_PATH: path.join(fnDir, filename),
    FN_MODE: mode,
  };
  if (name) env.FN_HANDLER_NAME = name;
  const proc = spawn(PYTHON, [LAUNCHER, sockPath, '--', process.execPath, WORKER], {
    env,
    cwd: fnDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w = { proc, dir, fnDir, sockPath, out: '', err: '', exit: null };
  proc.stdout.on('data', (d) => (w.out += d));
  proc.stderr.on('data', (d) => (w.err += d));
  w.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((w.exit = { code, signal }))));
  w.connect = () => Client.connect(sockPath);
  w.request = async (obj) => {
    const c = await w.connect();
    c.send(obj);
    const frame = await c.next();
    c.close();
    return frame;
  };
  w.call = (p, extra) => w.request({ event: event(p, extra) });
  w.body = async (p, extra) => JSON.parse((await w.call(p, extra)).body);
  w.stop = async () => {
    if (w.exit === null) {
      proc.kill('SIGKILL');
      await w.exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Ready once the worker answers a ping, exactly as the supervisor decides it.
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      const pong = await w.request({ op: 'ping' });
      if (pong) break;
    } catch {
      // socket not bound yet, or the worker not accepting yet
    }
    if (w.exit !== null || Date.now() > deadline) {
      await w.stop();
      throw new Error(`worker never answered ping; stderr:\n${w.err}`);
    }
    await sleep(10);
  }
  return w;
}

async function waitFor(predicate, what) {
  const deadline = Date.now() + DEADLINE_MS;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(10);
  }
}

// The worker writes to stderr before it answers, but the pipe reaches this process on its own schedule.
async function waitForStderr(w, pattern) {
  await waitFor(() => pattern.test(w.err), () => `stderr to match ${pattern}; stderr:\n${w.err}`);
}

describe('return shapes (run mode)', () => {
  let w;
  before(async () => (w = await startWorker()));
  after(() => w.stop());

  test('ping answers pong with the pid', async () => {
    assert.deepEqual(await w.request({ op: 'ping' }), { op: 'pong', pid: w.proc.pid }); // the launcher execs
  });

  test('object is 200 JSON', async () => {
    assert.deepEqual(await w.call('/object'), {
      status: 200,
      headers: { 'Content-Type': 'application/json' },
      body: '{"hello":"wörld","method":"GET"}',
    });
  });

  test('array, string, html, number, boolean', async () => {
    assert.deepEqual(await w.call('/array'), {
      status: 200, headers: { 'Content-Type': 'application/json' }, body: '[1,"two"]',
    });
    assert.deepEqual(await w.call('/string'), {
      status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: 'plain text',
    });
    assert.equal((await w.call('/html')).headers['Content-Type'], 'text/html; charset=utf-8');
    assert.deepEqual(await w.call('/number'), {
      status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: '42',
    });
    assert.equal((await w.call('/boolean')).body, 'false');
  });

  test('null and undefined are an empty 200', async () => {
    for (const p of ['/null', '/undefined']) {
      assert.deepEqual(await w.call(p), { status: 200, headers: {}, body: '' });
    }
  });

  test('Buffer and Uint8Array are base64 octet-stream', async () => {
    assert.deepEqual(await w.call('/buffer'), {
      status: 200, headers: { 'Content-Type': 'application/octet-stream' }, is_base64: true, body_base64: 'iVBORwA=',
    });
    assert.equal((await w.call('/uint8')).body_base64, 'AAE=');
  });

  test('envelope passes through, header values become strings', async () => {
    assert.deepEqual(await w.call('/envelope'), {
      status: 201, headers: { 'X-Multi': ['a', '2'], 'X-Num': '5' }, body: 'made',
    });
  });

  test('statusCode alias, object body JSON, existing content type kept', async () => {
    assert.deepEqual(await w.call('/status_code'), {
      status: 202, headers: { 'Content-Type': 'application/json' }, body: '{"ok":true}',
    });
    assert.deepEqual(await w.call('/own_type'), {
      status: 200, headers: { 'content-type': 'application/vnd.api+json' }, body: '[1]',
    });
  });

  test('binary bodies and base64 aliases', async () => {
    assert.deepEqual(await w.call('/env_buffer'), {
      status: 200, headers: { 'Content-Type': 'image/png' }, is_base64: true, body_base64: 'iVBORwA=',
    });
    for (const p of ['/b64_alias', '/b64_pair']) {
      assert.deepEqual(await w.call(p), { status: 200, headers: {}, is_base64: true, body_base64: 'AAE=' });
    }
    assert.deepEqual(await w.call('/null_body'), { status: 204, headers: {}, body: '' });
    assert.equal((await w.call('/number_body')).body, '7');
  });

  test('a fetch Response is unwrapped', async () => {
    assert.deepEqual(await w.call('/fetch_text'), {
      status: 201, headers: { 'content-type': 'text/plain', 'set-cookie': ['a=1'] }, body: 'made',
    });
    assert.deepEqual(await w.call('/fetch_binary'), {
      status: 200, headers: { 'content-type': 'image/png' }, is_base64: true, body_base64: 'AAE=',
    });
  });

  test('invalid responses are handler errors', async () => {
    for (const p of ['/status_600', '/status_str', '/status_float', '/circular', '/symbol']) {
      const reply = await w.call(p, { id: 'req-bad' });
      assert.equal(reply.status, 500, p);
      assert.deepEqual(JSON.parse(reply.body), { error: 'internal error', request_id: 'req-bad' }, p);
    }
    await waitForStderr(w, /\[req-bad\] InvalidResponse: response status must be an integer 100\.\.599, got 600/);
  });

  test('a throwing handler gets a 500 with the request id, the stack goes to stderr', async () => {
    for (const [p, id] of [['/boom', 'req-boom'], ['/reject', 'req-reject'], ['/throw_string', 'req-str']]) {
      const reply = await w.call(p, { id });
      assert.deepEqual(reply, {
        status: 500,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ error: 'internal error', request_id: id }),
      });
    }
    await waitForStderr(w, /\[req-boom\] RangeError: kaboom\n\s+at /);
    await waitForStderr(w, /\[req-reject\] Error: async kaboom/);
    await waitForStderr(w, /\[req-str\] thrown string: just a string/);
  });

  test('handler output reaches stdout', async () => {
    assert.equal((await w.call('/print')).status, 200);
    await waitFor(() => w.out.includes('hello from handler'), 'handler output');
  });

  test('many requests and pipelined frames on one connection', async () => {
    const c = await w.connect();
    for (let i = 0; i < 50; i++) {
      c.send({ event: event('/object', { id: `req-${i}` }) });
      assert.equal((await c.next()).status, 200);
    }
    c.sock.write(Buffer.concat([encodeFrame({ op: 'ping' }), encodeFrame({ event: event('/string') })]));
    assert.equal((await c.next()).op, 'pong');
    assert.equal((await c.next()).body, 'plain text');
    c.close();
  });

  test('frames split into single bytes', async () => {
    const c = await w.connect();
    c.sock.setNoDelay?.(true);
    const data = Buffer.concat([encodeFrame({ event: event('/object') }), encodeFrame({ op: 'ping' })]);
    for (let i = 0; i < data.length; i++) {
      c.sock.write(data.subarray(i, i + 1));
      if (i % 7 === 0) await sleep(0); // let some bytes leave alone, others coalesce
    }
    assert.equal((await c.next()).status, 200);
    assert.equal((await c.next()).op, 'pong');
    c.close();
  });

  test('concurrent connections: a fast request is not held up by a slow one', async () => {
    const slow = await w.connect();
    const fast = await w.connect();
    const started = Date.now();
    slow.send({ event: event('/sleep', { query: { s: '0.5' } }) });
    fast.send({ event: event('/object') });
    assert.equal((await fast.next()).status, 200);
    assert.ok(Date.now() - started < 400, 'fast request waited for the slow one');
    assert.deepEqual(JSON.parse((await slow.next()).body), { slept: 0.5 });
    assert.ok(Date.now() - started >= 490);
    slow.close();
    fast.close();
  });

  test('oversize frame gets 413, then the connection closes', async () => {
    const c = await w.connect();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(8 * 1024 * 1024 + 1);
    c.sock.write(Buffer.concat([head, Buffer.from('{"event":')]));
    assert.deepEqual(await c.next(), {
      status: 413, headers: { 'Content-Type': 'application/json' }, body: '{"error":"payload too large"}',
    });
    assert.equal(await c.next(), null);
  });

  test('garbage and non-object frames get 400, then the connection closes', async () => {
    for (const text of ['{not json', '[1,2,3]', '"str"', 'null', '{"neither":1}', '{"event":"x"}']) {
      const c = await w.connect();
      c.sock.write(rawFrame(text));
      const reply = await c.next();
      assert.equal(reply.status, 400, text);
      assert.deepEqual(JSON.parse(reply.body), { error: 'invalid request frame' });
      assert.equal(await c.next(), null, text);
    }
  });

  test('a length of 0 or 1 just closes', async () => {
    for (const n of [0, 1]) {
      const c = await w.connect();
      const head = Buffer.alloc(4);
      head.writeUInt32BE(n);
      c.sock.write(Buffer.concat([head, Buffer.from('{}')]));
      assert.equal(await c.next(), null);
    }
  });

  test('empty, truncated and half-closed connections are tolerated', async () => {
    for (const junk of [Buffer.alloc(0), Buffer.from([0, 0]), rawFrame('{"op":"ping"}').subarray(0, 9)]) {
      const c = await w.connect();
      c.sock.end(junk);
      assert.equal(await c.next(), null);
    }
    // Half-close right after a request: the answer still comes back.
    const c = await w.connect();
    c.sock.end(encodeFrame({ event: event('/sleep', { query: { s: '0.05' } }) }));
    assert.equal((await c.next()).status, 200);
    assert.equal(await c.next(), null);
    assert.equal(w.exit, null);
  });
});

describe('dev mode', () => {
  let w;
  before(async () => (w = await startWorker({ mode: 'dev' })));
  after(() => w.stop());

  test('error bodies carry the detail', async () => {
    assert.deepEqual(await w.body('/boom', { id: 'req-dev' }), {
      error: 'internal error', request_id: 'req-dev', detail: 'RangeError: kaboom',
    });
    assert.equal((await w.body('/reject')).detail, 'Error: async kaboom');
    assert.equal(
      (await w.body('/status_600')).detail,
      'InvalidResponse: response status must be an integer 100..599, got 600',
    );
  });
});

describe('console lines carry their request id', () => {
  test('before and after awaits, with requests interleaved', async () => {
    const source = `
      exports.handler = async (event) => {
        console.log('start', event.path);
        await new Promise((resolve) => setTimeout(resolve, Number(event.query.ms || 0)));
        console.log('end', event.path);
        return { ok: true };
      };
    `;
    const w = await startWorker({ source });
    try {
      // The first line switches request tracking on; from then on lines after an await are tagged too, even
      // while another request's lines interleave.
      await w.call('/first', { query: { ms: '0' } });
      const slow = w.call('/slow', { query: { ms: '100' }, id: 'req-slow' });
      const fast = w.call('/fast', { query: { ms: '10' }, id: 'req-fast' });
      await Promise.all([slow, fast]);
      await waitFor(() => /end \/slow/.test(w.out), 'the slow end line');
      assert.match(w.out, /\[req-slow\] start \/slow/);
      assert.match(w.out, /\[req-slow\] end \/slow/);
      assert.match(w.out, /\[req-fast\] end \/fast/);
    } finally {
      await w.stop();
    }
  });
});

describe('handler shapes', () => {
  test('async handler', async () => {
    const w = await startWorker({ name: 'asyncHandler' });
    try {
      assert.deepEqual(await w.body('/a'), { async: true, path: '/a' });
    } finally {
      await w.stop();
    }
  });

  test('(event, params) handler gets event.params', async () => {
    const w = await startWorker({ name: 'withParams' });
    try {
      assert.deepEqual(await w.body('/x', { params: { id: '42' } }), { id: '42', same: true });
    } finally {
      await w.stop();
    }
  });

  test('module.exports = function, default.handler, ES module', async () => {
    const cases = [
      { source: 'module.exports = (e) => ({ kind: "exports" });' },
      { source: 'exports.default = { handler: () => ({ kind: "default" }) };' },
      { source: 'export const handler = async () => ({ kind: "esm" });', filename: 'handler.mjs' },
    ];
    const kinds = [];
    for (const c of cases) {
      const w = await startWorker(c);
      try {
        kinds.push((await w.body('/x')).kind);
      } finally {
        await w.stop();
      }
    }
    assert.deepEqual(kinds, ['exports', 'default', 'esm']);
  });

  test('local modules resolve from the function folder', async () => {
    const w = await startWorker({
      source: 'const h = require("./helper"); exports.handler = () => ({ from: h.name });',
      files: { 'helper.js': 'exports.name = "helper";' },
    });
    try {
      assert.deepEqual(await w.body('/x'), { from: 'helper' });
    } finally {
      await w.stop();
    }
  });
});

describe('load failures keep the worker serving 500s', () => {
  const cases = [
    ['syntax error', { source: 'exports.handler = (e) => {{;' }, /^SyntaxError: /],
    ['throw at load', { source: 'throw new Error("no such dependency");' }, /^Error: no such dependency$/],
    ['missing symbol', { name: 'nope' }, /^TypeError: .* exports no function `nope`$/],
    ['not a function', { name: 'notAFunction' }, /^TypeError: /],
  ];
  for (const [label, opts, detail] of cases) {
    test(label, async () => {
      const w = await startWorker({ mode: 'dev', ...opts });
      try {
        for (let i = 0; i < 3; i++) {
          const reply = await w.call('/object', { id: `req-load-${i}` });
          assert.equal(reply.status, 500);
          const body = JSON.parse(reply.body);
          assert.equal(body.request_id, `req-load-${i}`);
          assert.match(body.detail, detail);
        }
        assert.equal((await w.request({ op: 'ping' })).op, 'pong');
        await waitForStderr(w, /cannot load handler/); // printed at start-up, before the first ping was answered
        assert.equal(w.err.split('cannot load handler').length - 1, 1, 'load error printed once');
      } finally {
        await w.stop();
      }
    });
  }
});

describe('process', () => {
  test('SIGTERM exits 0 promptly, even with an open connection', async () => {
    const w = await startWorker();
    try {
      const idle = await w.connect();
      const busy = await w.connect();
      busy.send({ event: event('/sleep', { query: { s: '5' } }) });
      await sleep(50);
      const started = Date.now();
      w.proc.kill('SIGTERM');
      assert.deepEqual(await w.exited, { code: 0, signal: null });
      assert.ok(Date.now() - started < 2000);
      idle.close();
      busy.close();
    } finally {
      await w.stop();
    }
  });

  test('missing environment exits 2', () => {
    for (const extra of [{}, { FN_WORKER_LISTEN_FD: '3' }, { FN_HANDLER_PATH: '/x.js' }]) {
      const r = spawnSync(process.execPath, [WORKER], { env: { PATH: process.env.PATH, ...extra }, encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /not set/);
    }
  });

  test('fd 3 that is not a listening socket exits 2', () => {
    const r = spawnSync(process.execPath, [WORKER], {
      env: { PATH: process.env.PATH, FN_WORKER_LISTEN_FD: '0', FN_HANDLER_PATH: '/nonexistent.js' },
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      timeout: DEADLINE_MS,
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /not a listening socket/);
  });
});
