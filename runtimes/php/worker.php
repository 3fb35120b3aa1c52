<?php
/*
 * fastfn PHP worker: one process serves one function (docs/wire.md, docs/event.md).
 *
 * The supervisor hands us an already-listening unix socket on fd 3. We load the handler file once, then answer framed
 * requests (4-byte big-endian length + UTF-8 JSON object). PHP has no threads, so one loop multiplexes the listener
 * and every open connection with socket_select(): handlers run one at a time, but an idle keepalive connection or a
 * slow client never holds up the others (all sockets are non-blocking and buffered here). Per request we only decode,
 * call, normalise and encode.
 *
 * What a handler returns (upstream FastFN's PHP contract):
 *   - the file defines a function `handler` (any case, any namespace): it is called as handler($event), or as
 *     handler($event, $params) when it declares more than one parameter;
 *       array/object → JSON; string → text/html when it starts with `<`, else text/plain; null → empty body;
 *       an array with any of the envelope keys → {status|statusCode, headers, body, is_base64/body_base64} passed
 *       through; what the handler echoes is the body when it returns null or "", and is prepended to a returned string;
 *       a string that is not valid UTF-8 or holds NUL is sent base64;
 *   - no `handler` function: "script mode": the file runs on every request with $event and $params in scope, its
 *     output is the body, the status comes from $FASTFN_STATUS or http_response_code(), headers from $FASTFN_HEADERS.
 *
 * Extensions: sockets (required: accept on fd 3, SO_PASSCRED peer check), json, pcre; used when present: tokenizer
 * (syntax check and mode detection without running the file), pcntl (SIGTERM), FFI (prctl, _exit). All of them ship
 * with Debian's php-cli.
 */

declare(strict_types=1);

namespace FastfnWorker;

const DEFAULT_MAX_FRAME = 8388608;
const JSON_TYPE = 'application/json';
const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;
const ENVELOPE_KEYS = [
    'status' => true, 'statusCode' => true, 'headers' => true, 'body' => true,
    'body_base64' => true, 'is_base64' => true, 'isBase64Encoded' => true,
];
const FATAL_ERRORS = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR;
// socket_select() cannot watch descriptors >= FD_SETSIZE (1024): past this many connections the least recently used
// idle one is closed (the gateway retries a pooled connection that died while idle).
const MAX_CONNECTIONS = 512;
const READ_CHUNK = 65536;
const MAX_READ = 4194304;
const WRITE_CHUNK = 262144; // bytes copied per send(): a big response is never re-copied whole per partial write
const SO_ACCEPTCONN = 30;   // Linux; ext-sockets has no constant for it

/** The handler returned something that cannot become a response envelope. */
final class InvalidResponse extends \RuntimeException
{
}

/** One accepted connection: what was read but not yet answered, and what is answered but not yet written. */
final class Conn
{
    public string $in = '';
    public string $out = '';
    public int $outPos = 0;
    public bool $eof = false;      // the peer finished sending
    public bool $closing = false;  // no more frames: close once $out is written
    public float $lastUsed;

    public function __construct(public \Socket $sock, public bool $verified)
    {
        $this->lastUsed = now();
    }
}

final class Worker
{
    /** @var array<int, Conn> */
    public array $conns = [];
    public ?\Closure $handler = null;  // handler mode
    public bool $takesParams = false;
    public bool $script = false;       // script mode: the file runs per request
    public ?string $loadError = null;  // "<Class>: <message>" when loading failed
    public string $phase = 'loading';  // loading | serving | exiting
    /** @var array{0: Conn, 1: string, 2: array, 3: int}|null the request in progress, for on_shutdown() */
    public ?array $current = null;
    public float $lastActive;
    public string $pong;
    public string $tooLarge;
    public string $badFrame;

    /** @param array<int, true>|null $allowedUids */
    public function __construct(
        public \Socket $listener,
        public string $path,
        public string $functionName,
        public bool $dev,
        public int $maxFrame,
        public int $idleTtl,
        public ?array $allowedUids,
        public ?\FFI $libc,
    ) {
        $this->lastActive = now();
        $this->pong = encode_frame(['op' => 'pong', 'pid' => getmypid()]);
        $this->tooLarge = error_frame(413, 'payload too large');
        $this->badFrame = error_frame(400, 'invalid request frame');
    }
}

function now(): float
{
    return hrtime(true) / 1e9;
}

function log_line(string $text): void
{
    @fwrite(\STDERR, $text . "\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Frames

function encode_frame(array $obj): string
{
    $json = json_encode($obj, JSON_FLAGS);
    return pack('N', strlen($json)) . $json;
}

function error_frame(int $status, string $message): string
{
    return encode_frame([
        'status' => $status,
        'headers' => ['Content-Type' => JSON_TYPE],
        'body' => json_encode(['error' => $message], JSON_FLAGS),
    ]);
}

function internal_error(Worker $w, string $requestId, ?string $detail, ?array $event): string
{
    $payload = ['error' => 'internal error', 'request_id' => $requestId];
    if ($w->dev && $detail !== null && $detail !== '') {
        $payload['detail'] = mask_env_values($detail, $event);
    }
    return encode_frame([
        'status' => 500,
        'headers' => ['Content-Type' => JSON_TYPE],
        'body' => json_encode($payload, JSON_FLAGS | JSON_INVALID_UTF8_SUBSTITUTE),
    ]);
}

/**
 * The dev-mode error detail goes back to the client: hide any env value it quotes (the worker cannot tell secret
 * values from plain ones, so it hides them all; the supervisor masks logs itself).
 */
function mask_env_values(string $text, ?array $event): string
{
    $env = $event['env'] ?? null;
    if (!is_array($env)) {
        return $text;
    }
    $values = array_filter($env, static fn ($v): bool => is_string($v) && strlen($v) >= 4);
    usort($values, static fn (string $a, string $b): int => strlen($b) <=> strlen($a));
    return $values === [] ? $text : str_replace($values, '<hidden>', $text);
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

function describe(\Throwable $e): string
{
    $class = $e instanceof InvalidResponse ? 'InvalidResponse' : get_class($e);
    return $class . ': ' . $e->getMessage();
}

/** Message and stack trace, without the frames of this file: the trace starts in the user's code. */
function format_throwable(\Throwable $e): string
{
    $parts = [];
    for ($x = $e; $x !== null; $x = $x->getPrevious()) {
        $text = describe($x) . ' in ' . $x->getFile() . ':' . $x->getLine();
        $i = 0;
        foreach ($x->getTrace() as $f) {
            $function = ($f['class'] ?? '') . ($f['type'] ?? '') . $f['function'];
            if (($f['file'] ?? null) === __FILE__ || str_starts_with($function, __NAMESPACE__ . '\\')) {
                continue;
            }
            $where = isset($f['file']) ? $f['file'] . '(' . ($f['line'] ?? 0) . ')' : '[internal function]';
            $text .= "\n#" . $i++ . ' ' . $where . ': ' . $function . '()';
        }
        $parts[] = $text;
    }
    return implode("\nCaused by: ", $parts);
}

function fatal_error(): ?array
{
    $error = error_get_last();
    return $error !== null && ($error['type'] & FATAL_ERRORS) !== 0 ? $error : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading the handler (once, before serving)

/**
 * Reads the handler file's tokens (token_get_all(TOKEN_PARSE) also reports syntax errors, as ParseError). Returns
 * [whether it declares a function `handler` outside any class, the first function or class it declares at the top
 * level]. With a `handler` the file is loaded once and the function called per request; otherwise the file is a
 * script, run per request: deciding from tokens means a script never runs without a request.
 */
function scan_source(string $source): array
{
    if (!function_exists('token_get_all')) { // no ext-tokenizer: a plain look at the text
        return [preg_match('/\bfunction\s*&?\s*handler\s*\(/i', $source) === 1, null];
    }
    $handler = false;
    $topLevel = null;
    $depth = 0;
    $classDepths = [];
    $classPending = false;
    $previous = null;
    $afterFunction = false;
    foreach (token_get_all($source, TOKEN_PARSE) as $token) {
        $id = is_array($token) ? $token[0] : $token;
        if ($id === T_WHITESPACE || $id === T_COMMENT || $id === T_DOC_COMMENT) {
            continue;
        }
        if ($afterFunction && $id !== '&') {
            $afterFunction = false;
            if ($id === T_STRING && $classDepths === []) {
                $handler = $handler || strcasecmp($token[1], 'handler') === 0;
                $topLevel ??= $depth === 0 ? "function {$token[1]}()" : null;
            }
        }
        if ($id === '{' || $id === T_CURLY_OPEN || $id === T_DOLLAR_OPEN_CURLY_BRACES) {
            $depth++;
            if ($classPending && $id === '{') {
                $classDepths[] = $depth;
                $classPending = false;
            }
        } elseif ($id === '}') {
            if ($classDepths !== [] && end($classDepths) === $depth) {
                array_pop($classDepths);
            }
            $depth--;
        } elseif (in_array($id, [T_CLASS, T_INTERFACE, T_TRAIT, T_ENUM], true) && $previous !== T_DOUBLE_COLON) {
            $classPending = true;
            $topLevel ??= $depth === 0 && $previous !== T_NEW ? 'a class' : null;
        } elseif ($id === T_FUNCTION) {
            $afterFunction = true;
        }
        $previous = $id;
    }
    return [$handler, $topLevel];
}

/** The last newly defined function named `handler` (any case, any namespace), else a global `handler`. */
function find_handler(array $before): ?string
{
    $new = array_values(array_filter(get_defined_functions()['user'], static fn ($f): bool => !isset($before[$f])));
    for ($i = count($new) - 1; $i >= 0; $i--) {
        $pos = strrpos($new[$i], '\\');
        if (strcasecmp($pos === false ? $new[$i] : substr($new[$i], $pos + 1), 'handler') === 0) {
            return $new[$i];
        }
    }
    return function_exists('handler') ? 'handler' : null;
}

function load_handler(Worker $w): void
{
    // Dependencies fastfn installed from the function's composer.json.
    $vendor = getenv('FN_PHP_VENDOR_DIR');
    if (is_string($vendor) && $vendor !== '' && is_file("$vendor/autoload.php")) {
        require_once "$vendor/autoload.php";
    }
    $source = @file_get_contents($w->path);
    if ($source === false) {
        throw new \RuntimeException("cannot read {$w->path}");
    }
    [$hasHandler, $topLevel] = scan_source($source);
    if (!$hasHandler) {
        $w->script = true;
        if ($topLevel !== null) {
            log_line("fastfn: `{$w->functionName}` ({$w->path}) has no `handler` function, so it runs as a script on"
                . " every request, yet it declares $topLevel: PHP cannot declare it twice, so every request after the"
                . ' first fails. Declare it in a file the script require_once\'s, or define handler($event).');
        }
        return;
    }
    $before = array_fill_keys(get_defined_functions()['user'], true);
    $level = ob_get_level();
    ob_start();
    try {
        // A function scope: the file's top-level variables do not leak into the worker's.
        (static function (string $__fastfn_path): void {
            require $__fastfn_path;
        })($w->path);
    } finally {
        forward_to_log(end_capture($level)); // output while loading is not any request's
    }
    $name = find_handler($before);
    if ($name === null) {
        // `function handler` was never declared (a condition skipped it): the file is a script (and has run once).
        $w->script = true;
        return;
    }
    $w->handler = \Closure::fromCallable($name);
    $w->takesParams = (new \ReflectionFunction($w->handler))->getNumberOfParameters() > 1;
}

/** Script mode: run the file with $event and $params in scope; returns its own $FASTFN_STATUS and $FASTFN_HEADERS. */
function run_script(string $__fastfn_path, array $event, array $params): array
{
    $FASTFN_STATUS = null;
    $FASTFN_HEADERS = null;
    require $__fastfn_path;
    return [$FASTFN_STATUS, $FASTFN_HEADERS];
}

// ---------------------------------------------------------------------------------------------------------------
// Output capture

/** Ends the capture begun at ob level $level + 1 (closing what the handler left open) and returns its text. */
function end_capture(int $level): string
{
    for ($n = ob_get_level(); $n > $level + 1; $n--) { // bounded: a buffer may refuse to close
        @ob_end_flush();
    }
    return ob_get_level() > $level ? (string) @ob_get_clean() : '';
}

/** Output that does not become a response body goes to stdout, which the supervisor logs. */
function forward_to_log(string $output): void
{
    if ($output !== '') {
        @fwrite(\STDOUT, $output);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Normalising what the handler returns (contract §5.2, PHP)

function status_value(mixed $value): ?int
{
    return is_int($value) && $value >= 100 && $value <= 599 ? $value : null;
}

function header_text(mixed $value): string
{
    if (is_string($value)) {
        return $value;
    }
    if (is_bool($value)) {
        return $value ? 'true' : 'false';
    }
    if (is_int($value) || is_float($value) || $value instanceof \Stringable) {
        return (string) $value;
    }
    throw new InvalidResponse('response header values must be strings, got ' . get_debug_type($value));
}

/** name => string or list of strings; null values are dropped. $strict: the handler's envelope (else a global). */
function headers_of(mixed $raw, bool $strict): array
{
    if ($raw === null || $raw === []) {
        return [];
    }
    if (!is_array($raw)) {
        if ($strict) {
            $type = get_debug_type($raw);
            throw new InvalidResponse("response headers must be an array of name => value, got $type");
        }
        return [];
    }
    $out = [];
    foreach ($raw as $name => $value) {
        if ($value === null) {
            continue;
        }
        if (!$strict && (is_int($name) || is_array($value) || is_object($value))) {
            continue;
        }
        if (is_array($value)) {
            $list = [];
            foreach ($value as $item) {
                if ($item !== null) {
                    $list[] = header_text($item);
                }
            }
            $out[(string) $name] = $list;
        } else {
            $out[(string) $name] = header_text($value);
        }
    }
    return $out;
}

function with_default_header(array $headers, string $name, string $value): array
{
    foreach ($headers as $key => $_) {
        if (strcasecmp((string) $key, $name) === 0) {
            return $headers;
        }
    }
    $headers[$name] = $value;
    return $headers;
}

/** Not sendable as a JSON string: NUL, or not valid UTF-8. */
function is_binary(string $body): bool
{
    return str_contains($body, "\0") || preg_match('//u', $body) !== 1;
}

function base64_envelope(int $status, array $headers, string $bytes): array
{
    return [
        'status' => $status,
        'headers' => with_default_header($headers, 'Content-Type', 'application/octet-stream'),
        'is_base64' => true,
        'body_base64' => base64_encode($bytes),
    ];
}

/** A value that is not an envelope: what upstream calls a "magic" response. */
function from_value(mixed $value, int $status, array $headers): array
{
    if ($value === null) {
        return ['status' => $status, 'headers' => $headers, 'body' => ''];
    }
    if (is_array($value) || is_object($value)) {
        $headers = with_default_header($headers, 'Content-Type', JSON_TYPE);
        return ['status' => $status, 'headers' => $headers, 'body' => json_encode($value, JSON_FLAGS)];
    }
    $body = is_string($value) ? $value : (string) $value;
    if ($body === '') {
        return ['status' => $status, 'headers' => $headers, 'body' => ''];
    }
    if (is_binary($body)) {
        return base64_envelope($status, $headers, $body);
    }
    $html = ($body[strspn($body, " \t\r\n\f\v")] ?? '') === '<';
    $type = $html ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8';
    return ['status' => $status, 'headers' => with_default_header($headers, 'Content-Type', $type), 'body' => $body];
}

/** An array with envelope keys: {status|statusCode, headers, body | is_base64 + body_base64 | isBase64Encoded}. */
function from_envelope(array $r, array $runtimeHeaders): array
{
    $status = array_key_exists('status', $r) ? $r['status'] : ($r['statusCode'] ?? 200);
    if (status_value($status) === null) {
        $shown = is_scalar($status) ? var_export($status, true) : get_debug_type($status);
        throw new InvalidResponse("response status must be an int 100..599, got $shown");
    }
    $headers = headers_of($r['headers'] ?? null, true);
    if ($runtimeHeaders !== []) {
        $headers = array_merge($runtimeHeaders, $headers);
    }
    $flag = $r['is_base64'] ?? $r['isBase64Encoded'] ?? null;
    $b64 = null;
    if (array_key_exists('body_base64', $r) && $flag !== false) {
        $b64 = $r['body_base64'];
    } elseif ($flag === true) {
        $b64 = $r['body'] ?? '';
    }
    if ($b64 !== null) {
        if (!is_string($b64)) {
            throw new InvalidResponse('base64 body must be a string, got ' . get_debug_type($b64));
        }
        return ['status' => $status, 'headers' => $headers, 'is_base64' => true, 'body_base64' => $b64];
    }
    $body = $r['body'] ?? null;
    if ($body === null) {
        $body = '';
    } elseif (is_array($body) || is_object($body)) {
        $headers = with_default_header($headers, 'Content-Type', JSON_TYPE);
        $body = json_encode($body, JSON_FLAGS);
    } elseif (!is_string($body)) {
        $body = is_bool($body) ? ($body ? 'true' : 'false') : (string) $body;
    }
    if ($body !== '' && is_binary($body)) {
        return base64_envelope($status, $headers, $body);
    }
    return ['status' => $status, 'headers' => $headers, 'body' => $body];
}

/** Handler mode: the return value plus what the handler echoed ($output). */
function normalise(mixed $result, string $output, int $status, array $headers): array
{
    if (is_array($result) && array_intersect_key($result, ENVELOPE_KEYS) !== []) {
        $envelope = from_envelope($result, $headers);
        if ($output !== '' && ($envelope['body'] ?? null) === '') {
            return from_value($output, $envelope['status'], $envelope['headers']);
        }
        forward_to_log($output);
        return $envelope;
    }
    if ($output !== '') {
        if ($result === null || $result === '') {
            $result = $output;
        } elseif (is_string($result)) {
            $result = $output . $result;
        } else {
            forward_to_log($output);
        }
    }
    return from_value($result, $status, $headers);
}

/** Status and headers set outside the return value: $FASTFN_STATUS / $FASTFN_HEADERS, http_response_code(). */
function runtime_status(mixed $scoped): int
{
    return status_value($scoped) ?? status_value($GLOBALS['FASTFN_STATUS'] ?? null)
        ?? status_value(http_response_code()) ?? 200;
}

function runtime_headers(mixed $scoped): array
{
    $global = headers_of($GLOBALS['FASTFN_HEADERS'] ?? null, false);
    return $scoped === null ? $global : array_merge($global, headers_of($scoped, false));
}

function envelope_frame(array $envelope): string
{
    $envelope['headers'] = (object) $envelope['headers']; // {} even when empty: the gateway wants an object
    return encode_frame($envelope);
}

// ---------------------------------------------------------------------------------------------------------------
// Serving

function request_id(array $event): string
{
    if (is_string($event['id'] ?? null)) {
        return $event['id'];
    }
    $context = $event['context'] ?? null;
    return is_array($context) && is_string($context['request_id'] ?? null) ? $context['request_id'] : '-';
}

/** Calls the handler on one event and returns the response frame. */
function handle_event(Worker $w, Conn $c, array $event): string
{
    $requestId = request_id($event);
    if ($w->loadError !== null) {
        return internal_error($w, $requestId, $w->loadError, null);
    }
    $params = is_array($event['params'] ?? null) ? $event['params'] : [];
    unset($GLOBALS['FASTFN_STATUS'], $GLOBALS['FASTFN_HEADERS']);
    http_response_code(200);
    $level = ob_get_level();
    ob_start();
    $w->current = [$c, $requestId, $event, $level];
    try {
        $scoped = [null, null];
        if ($w->script) {
            $scoped = run_script($w->path, $event, $params);
            $result = null;
        } else {
            $result = $w->takesParams ? ($w->handler)($event, $params) : ($w->handler)($event);
        }
        $output = end_capture($level);
    } catch (\Throwable $e) {
        try {
            forward_to_log(end_capture($level));
        } catch (\Throwable) {
        }
        $w->current = null;
        log_line("[$requestId] " . format_throwable($e));
        return internal_error($w, $requestId, describe($e), $event);
    }
    $w->current = null;
    try {
        $status = runtime_status($scoped[0]);
        $headers = runtime_headers($scoped[1]);
        $envelope = $w->script
            ? from_value($output, $status, $headers)
            : normalise($result, $output, $status, $headers);
        return envelope_frame($envelope);
    } catch (\Throwable $e) {
        $detail = describe($e);
        log_line("[$requestId] $detail");
        return internal_error($w, $requestId, $detail, $event);
    }
}

/** Answers one request frame: [bytes to send, keep the connection open]. */
function reply(Worker $w, Conn $c, string $body): array
{
    // Lenient decoding: a stray invalid byte in the raw request body must not kill the request. json_decode() maps
    // JSON objects and arrays alike to PHP arrays, so the object check looks at the text.
    $request = json_decode($body, true, 512, JSON_INVALID_UTF8_SUBSTITUTE);
    if (!is_array($request) || ($body[strspn($body, " \t\r\n")] ?? '') !== '{') {
        return [$w->badFrame, false];
    }
    $event = $request['event'] ?? null;
    if (is_array($event) && ($event === [] || !array_is_list($event))) {
        $answer = handle_event($w, $c, $event);
        $w->lastActive = now();
        return [$answer, true];
    }
    if (($request['op'] ?? null) === 'ping') {
        $w->lastActive = now();
        return [$w->pong, true];
    }
    return [$w->badFrame, false];
}

function close_conn(Worker $w, Conn $c): void
{
    unset($w->conns[spl_object_id($c->sock)]);
    @socket_close($c->sock);
}

/** Writes what it can of $c->out without blocking; false when the connection is gone (or done and closed). */
function flush_out(Worker $w, Conn $c): bool
{
    while ($c->out !== '') {
        $left = strlen($c->out) - $c->outPos;
        $chunk = $c->outPos === 0 && $left <= WRITE_CHUNK ? $c->out : substr($c->out, $c->outPos, WRITE_CHUNK);
        $n = @socket_send($c->sock, $chunk, strlen($chunk), MSG_NOSIGNAL);
        if ($n === false) {
            $err = socket_last_error($c->sock);
            socket_clear_error($c->sock);
            if ($err === SOCKET_EAGAIN || $err === SOCKET_EINTR) {
                return true; // the socket is full: socket_select() says when to go on
            }
            close_conn($w, $c); // peer reset or went away: nobody left to answer
            return false;
        }
        $c->outPos += $n;
        if ($c->outPos >= strlen($c->out)) {
            $c->out = '';
            $c->outPos = 0;
        }
    }
    if ($c->closing) {
        close_conn($w, $c);
        return false;
    }
    return true;
}

/** Answers every complete frame buffered on $c, one at a time, while its previous answer is fully written. */
function pump(Worker $w, Conn $c): void
{
    while (!$c->closing && $c->out === '') {
        $have = strlen($c->in);
        if ($have < 4) {
            break;
        }
        $length = unpack('N', $c->in)[1];
        if ($length > $w->maxFrame) {
            $c->in = '';
            $c->out = $w->tooLarge; // answered without reading the body, then closed
            $c->closing = true;
        } elseif ($length < 2) {
            $c->in = '';
            $c->closing = true;
            break;
        } elseif ($have < 4 + $length) {
            break;
        } else {
            $body = substr($c->in, 4, $length);
            $c->in = $have === 4 + $length ? '' : substr($c->in, 4 + $length);
            [$c->out, $keep] = reply($w, $c, $body);
            $c->closing = !$keep;
            $c->lastUsed = now();
        }
        if (!flush_out($w, $c)) {
            return;
        }
    }
    if ($c->out === '' && ($c->closing || $c->eof)) {
        close_conn($w, $c); // clean close between frames, or a truncated frame: nothing to answer
    }
}

/** Reads what is there; the first read of a connection also checks the peer's uid (SCM_CREDENTIALS). */
function on_readable(Worker $w, Conn $c): void
{
    $want = READ_CHUNK;
    if (strlen($c->in) >= 4) {
        $want = max($want, min(MAX_READ, 4 + unpack('N', $c->in)[1] - strlen($c->in)));
    }
    if ($c->verified) {
        $data = null;
        $n = @socket_recv($c->sock, $data, $want, 0);
    } else {
        $msg = ['name' => [], 'buffer_size' => $want, 'controllen' => socket_cmsg_space(SOL_SOCKET, SCM_CREDENTIALS)];
        $n = @socket_recvmsg($c->sock, $msg, 0);
        if ($n !== false) {
            $uid = null;
            foreach ($msg['control'] ?? [] as $cmsg) {
                if ($cmsg['level'] === SOL_SOCKET && $cmsg['type'] === SCM_CREDENTIALS) {
                    $uid = $cmsg['data']['uid'] ?? null;
                }
            }
            if ($n > 0 && ($uid === null || !isset($w->allowedUids[$uid]))) {
                close_conn($w, $c); // not the gateway nor the supervisor: closed unanswered
                return;
            }
            $c->verified = $n > 0;
            $data = $msg['iov'][0] ?? '';
        }
    }
    if ($n === false) {
        $err = socket_last_error($c->sock);
        socket_clear_error($c->sock);
        if ($err !== SOCKET_EAGAIN && $err !== SOCKET_EINTR) {
            close_conn($w, $c); // peer reset: nobody left to answer
        }
        return;
    }
    if ($n === 0) {
        $c->eof = true;
    } else {
        $c->in .= $data;
    }
    pump($w, $c);
}

function accept_new(Worker $w): void
{
    for ($i = 0; $i < 16; $i++) {
        if (count($w->conns) >= MAX_CONNECTIONS && !evict_idle($w)) {
            return;
        }
        $sock = @socket_accept($w->listener);
        if ($sock === false) {
            $err = socket_last_error($w->listener);
            socket_clear_error($w->listener);
            if (in_array($err, [SOCKET_EMFILE, SOCKET_ENFILE, SOCKET_ENOBUFS, SOCKET_ENOMEM], true)) {
                usleep(50000); // out of descriptors: don't spin; the gateway will retry
            }
            return; // EAGAIN: another worker of the pool took it, or nothing left
        }
        @socket_set_nonblock($sock);
        $w->conns[spl_object_id($sock)] = new Conn($sock, $w->allowedUids === null);
    }
}

/** Closes the least recently used connection with nothing in flight; false when there is none. */
function evict_idle(Worker $w): bool
{
    $oldest = null;
    foreach ($w->conns as $c) {
        if ($c->in === '' && $c->out === '' && ($oldest === null || $c->lastUsed < $oldest->lastUsed)) {
            $oldest = $c;
        }
    }
    if ($oldest === null) {
        return false;
    }
    close_conn($w, $oldest);
    return true;
}

function serve(Worker $w): never
{
    $w->phase = 'serving';
    // With an idle timeout, wake once a second to check it; exit 0 tells the supervisor "idle", not "crashed".
    $timeout = $w->idleTtl > 0 ? 1 : null;
    while (true) {
        $read = [];
        $write = [];
        $except = null;
        if (count($w->conns) < MAX_CONNECTIONS || has_idle($w)) {
            $read[] = $w->listener;
        }
        foreach ($w->conns as $c) {
            if ($c->out !== '') {
                $write[] = $c->sock;
            } elseif (!$c->closing && !$c->eof) {
                $read[] = $c->sock;
            }
        }
        if ($read === [] && $write === []) {
            usleep(10000); // every connection is mid-frame at the cap: cannot happen with the gateway; don't spin
            continue;
        }
        $n = @socket_select($read, $write, $except, $timeout);
        if ($n === false) {
            $err = socket_last_error();
            socket_clear_error();
            if ($err !== SOCKET_EINTR) {
                log_line('fastfn php worker: select: ' . socket_strerror($err));
                usleep(50000);
            }
            continue;
        }
        if ($n === 0) {
            if ($w->idleTtl > 0 && now() - $w->lastActive >= $w->idleTtl) {
                quit($w, 0);
            }
            continue;
        }
        foreach ($write as $sock) {
            $c = $w->conns[spl_object_id($sock)] ?? null;
            if ($c !== null && flush_out($w, $c) && $c->out === '') {
                pump($w, $c);
            }
        }
        foreach ($read as $sock) {
            if ($sock === $w->listener) {
                accept_new($w);
            } elseif (($c = $w->conns[spl_object_id($sock)] ?? null) !== null) {
                on_readable($w, $c);
            }
        }
    }
}

function has_idle(Worker $w): bool
{
    foreach ($w->conns as $c) {
        if ($c->in === '' && $c->out === '') {
            return true;
        }
    }
    return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Process

/** Exits at once, like os._exit: no user shutdown function or destructor may delay it. */
function quit(Worker $w, int $code): never
{
    $w->phase = 'exiting';
    if ($w->libc !== null) {
        $w->libc->_exit($code);
    }
    exit($code);
}

/**
 * Runs at exit() and after a fatal error. While loading: the load failed; keep serving 500s from here. During a
 * request: the handler called exit() (its output so far is the response, as under php-fpm) or died of a fatal error
 * (500); answer, then let the process end: the supervisor starts a fresh worker.
 */
function on_shutdown(Worker $w): void
{
    if ($w->phase === 'exiting') {
        return;
    }
    $fatal = fatal_error();
    if ($w->phase === 'loading') {
        $w->loadError = $fatal !== null
            ? 'FatalError: ' . $fatal['message']
            : 'RuntimeException: the handler file called exit() while loading';
        forward_to_log(end_capture(0));
        report_load_error($w, $fatal !== null ? "{$w->loadError} in {$fatal['file']}:{$fatal['line']}" : $w->loadError);
        $w->handler = null;
        $w->script = false;
        serve($w);
    }
    if ($w->current === null) {
        return;
    }
    [$c, $requestId, $event, $level] = $w->current;
    $w->current = null;
    if ($fatal !== null) {
        $detail = 'FatalError: ' . $fatal['message'];
        forward_to_log(end_capture($level));
        log_line("[$requestId] $detail in {$fatal['file']}:{$fatal['line']}; the worker exits");
        $frame = internal_error($w, $requestId, $detail, $event);
    } else {
        log_line("[$requestId] the handler called exit(): its output is the response; the worker exits");
        try {
            $frame = envelope_frame(from_value(end_capture($level), runtime_status(null), runtime_headers(null)));
        } catch (\Throwable $e) {
            $frame = internal_error($w, $requestId, describe($e), $event);
        }
    }
    if (!isset($w->conns[spl_object_id($c->sock)])) {
        return;
    }
    // The last answer of this process: write it out, blocking, but never for long.
    socket_set_block($c->sock);
    @socket_set_option($c->sock, SOL_SOCKET, SO_SNDTIMEO, ['sec' => 5, 'usec' => 0]);
    $c->out = substr($c->out, $c->outPos) . $frame;
    $c->outPos = 0;
    while ($c->out !== '' && ($n = @socket_send($c->sock, $c->out, strlen($c->out), MSG_NOSIGNAL)) !== false) {
        $c->out = (string) substr($c->out, $n);
    }
    close_conn($w, $c);
}

function report_load_error(Worker $w, string $trace): void
{
    log_line("fastfn: cannot load handler of `{$w->functionName}` from {$w->path}:\n$trace");
}

function fail(string $message): never
{
    log_line("fastfn php worker: $message");
    exit(2);
}

/** libc through FFI (enabled for the CLI by Debian's default ffi.enable=preload): prctl() and _exit(). */
function load_libc(): ?\FFI
{
    if (!class_exists(\FFI::class)) {
        return null;
    }
    try {
        return \FFI::cdef('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,'
            . ' unsigned long a5); void _exit(int status);');
    } catch (\Throwable) {
        return null;
    }
}

/** FN_ALLOWED_PEER_UIDS: the uids allowed to connect (the gateway's and the supervisor's); null = anyone. */
function allowed_peer_uids(): ?array
{
    $text = (string) getenv('FN_ALLOWED_PEER_UIDS');
    $uids = [];
    foreach (explode(',', $text) as $part) {
        $part = trim($part);
        if ($part === '') {
            continue;
        }
        if (preg_match('/^\d+$/', $part) !== 1) {
            return null; // as the Python worker: an unreadable list checks nothing
        }
        $uids[(int) $part] = true;
    }
    return $uids === [] ? null : $uids;
}

function env_int(string $name, int $default): int
{
    $text = trim((string) getenv($name));
    return preg_match('/^\d+$/', $text) === 1 ? (int) $text : $default;
}

function main(): never
{
    ini_set('display_errors', '0'); // errors never go into a response body; log_errors sends them to stderr
    ini_set('log_errors', '1');
    ini_set('html_errors', '0');

    $fdText = (string) getenv('FN_WORKER_LISTEN_FD');
    $path = (string) getenv('FN_HANDLER_PATH');
    $required = ['FN_WORKER_LISTEN_FD' => $fdText, 'FN_HANDLER_PATH' => $path];
    $missing = array_keys(array_filter($required, static fn (string $v): bool => $v === ''));
    if ($missing !== []) {
        fail(implode(' and ', $missing) . ' not set; it is started by the fastfn supervisor');
    }
    if (!function_exists('socket_import_stream')) {
        fail('the PHP extension `sockets` is missing (Debian ships it with php-cli: check the php.ini in use)');
    }
    $stream = preg_match('/^\d+$/', $fdText) === 1 ? @fopen("php://fd/$fdText", 'r') : false;
    $listener = $stream !== false ? @socket_import_stream($stream) : false;
    if ($listener === false || @socket_get_option($listener, SOL_SOCKET, SO_TYPE) !== SOCK_STREAM
        || @socket_get_option($listener, SOL_SOCKET, SO_ACCEPTCONN) !== 1) {
        fail("FN_WORKER_LISTEN_FD=$fdText is not a listening socket");
    }
    // Non-blocking: with a pool of workers on one socket, another may take the connection select() announced.
    socket_set_nonblock($listener);
    $allowed = allowed_peer_uids();
    if ($allowed !== null && !@socket_set_option($listener, SOL_SOCKET, SO_PASSCRED, 1)) {
        $reason = socket_strerror(socket_last_error($listener));
        log_line("fastfn php worker: cannot set SO_PASSCRED ($reason): every peer is refused");
    }

    $libc = load_libc();
    // exec reset PR_SET_DUMPABLE: set it again, so no process of the same user can read this one's memory or /proc
    // files (hardening.md §0.9). Best effort: the sandbox does not depend on it alone.
    $libc?->prctl(4, 0, 0, 0, 0);

    $w = new Worker(
        $listener,
        $path,
        (string) getenv('FN_FUNCTION_NAME'),
        getenv('FN_MODE') === 'dev',
        env_int('FN_MAX_FRAME_BYTES', 0) ?: DEFAULT_MAX_FRAME,
        env_int('FN_IDLE_TTL_SECONDS', 0),
        $allowed,
        $libc,
    );

    if (function_exists('pcntl_async_signals')) {
        // Before loading: a slow include must still stop cleanly. No SA_RESTART, so a blocking call returns at once.
        pcntl_async_signals(true);
        $terminate = static function () use ($w): void {
            quit($w, 0);
        };
        pcntl_signal(SIGTERM, $terminate, false);
        pcntl_signal(SIGINT, $terminate, false);
    }
    // Warnings and notices are the handler's errors (upstream turns them into exceptions too); `@` and
    // error_reporting() still silence them, and deprecations are only logged (PHP's own logging: stderr).
    set_error_handler(static function (int $severity, string $message, string $file = '', int $line = 0): bool {
        if ((error_reporting() & $severity & ~(E_DEPRECATED | E_USER_DEPRECATED)) === 0) {
            return false;
        }
        throw new \ErrorException($message, 0, $severity, $file, $line);
    });
    register_shutdown_function(static function () use ($w): void {
        on_shutdown($w);
    });

    try {
        load_handler($w);
    } catch (\Throwable $e) {
        $w->loadError = describe($e);
        report_load_error($w, format_throwable($e));
    }
    serve($w);
}

main();
