-- Sends one event frame to a function's worker over its unix socket and reads the framed envelope back
-- (docs/wire.md). Connections are kept in the cosocket keepalive pool (one pool per socket path); a function whose
-- socket nobody listens on is cold-started through the supervisor's control socket.
--
-- call() returns the decoded envelope table, or nil, status, message for response.error(); the last value is always
-- the function state for the X-FastFN-Function-State header ("cold" when this request started the worker).

local ngx = ngx
local tcp = ngx.socket.tcp
local log = ngx.log
local WARN = ngx.WARN
local INFO = ngx.INFO
local json = require("cjson.safe").new()
local frame = require "fastfn.frame"

local frame_header = frame.header
local decode_len = frame.decode_len
local encode_frame = frame.encode
local max = math.max
local floor = math.floor
local type = type
local tostring = tostring

local _M = { _VERSION = "0.1.0" }

local MAX_RESPONSE = frame.MAX_RESPONSE
local CONTROL_MAX = 1048576
local KEEPALIVE_MS = 60000
local POOL_SIZE = 64

local WARM, COLD = "warm", "cold"

-- Connect errors that mean "nobody is listening there": worth a cold start.
local MISSING = "socket file missing"
local NOT_LISTENING = {
    [MISSING] = true,
    ["no such file or directory"] = true,
    ["connection refused"] = true,
    ["permission denied"] = true,
}

-- A reused connection that fails like this on its first read died while it idled in the pool.
local DEAD_WHILE_IDLE = {
    ["closed"] = true,
    ["connection reset by peer"] = true,
    ["broken pipe"] = true,
}

-- Whether a socket path exists and we may connect to it (connecting to a unix socket needs write permission). nginx
-- logs a failed connect() to a missing or forbidden unix socket at [crit] level (and lua_socket_log_errors cannot
-- silence it), so the gateway looks before it connects: a missing socket file is the normal sign of a cold
-- function, and one we may not write (something else was put at its path) is repaired by the supervisor the same
-- way. Without the FFI (plain Lua) every path is assumed to be fine.
local socket_exists
do
    local ok, ffi = pcall(require, "ffi")
    if ok then
        pcall(ffi.cdef, "int access(const char *pathname, int mode);")
        local C = ffi.C
        local errno = ffi.errno
        local W_OK = 2
        local ENOENT, ENOTDIR, EACCES = 2, 20, 13
        socket_exists = function(path)
            if C.access(path, W_OK) == 0 then
                return true
            end
            local e = errno()
            return e ~= ENOENT and e ~= ENOTDIR and e ~= EACCES
        end
    else
        socket_exists = function()
            return true
        end
    end
end
_M.socket_exists = socket_exists

local control_path, control_uri, control_timeout

--- Called once from init: where the supervisor listens and how long a cold start may take.
function _M.configure(opts)
    if type(opts.control_socket) ~= "string" or opts.control_socket == "" then
        error("control_socket must be a non-empty string", 2)
    end
    local t = opts.cold_start_timeout_ms
    if type(t) ~= "number" or t <= 0 then
        error("cold_start_timeout_ms must be a positive number", 2)
    end
    control_path = opts.control_socket
    control_uri = "unix:" .. control_path
    control_timeout = t
end

--- Called once per catalog function at load: precomputes what every request to it needs.
-- Each worker of the pool (1-based w here, 0-based index for the supervisor) has its socket and control frames.
function _M.prepare(fn)
    fn.connect_timeout_ms = max(50, floor(fn.timeout_ms * 0.2))
    fn.pool = #fn.sockets
    fn.next_worker = 0
    fn.inflight = {}
    for w = 1, fn.pool do
        fn.inflight[w] = 0
    end
    fn.sock_uris, fn.ensure_frames, fn.timed_out_frames = {}, {}, {}
    for w = 1, fn.pool do
        fn.sock_uris[w] = "unix:" .. fn.sockets[w]
        fn.ensure_frames[w] = encode_frame(json.encode({ op = "ensure", ["function"] = fn.id, index = w - 1 }))
        fn.timed_out_frames[w] = encode_frame(json.encode({ op = "timed_out", ["function"] = fn.id, index = w - 1 }))
    end
end

-- One request/response exchange with the supervisor. Returns the decoded reply table, or nil and an error.
local function control_call(req, max_reply)
    if not socket_exists(control_path) then
        return nil, "control socket " .. control_path .. " does not exist"
    end
    local sock = tcp()
    sock:settimeouts(control_timeout, control_timeout, control_timeout)
    local ok, err = sock:connect(control_uri)
    if not ok then
        return nil, "connect to control socket: " .. tostring(err)
    end
    ok, err = sock:send(req)
    if not ok then
        sock:close()
        return nil, "send to control socket: " .. tostring(err)
    end
    local hdr
    hdr, err = sock:receive(4)
    if not hdr then
        sock:close()
        return nil, "read from control socket: " .. tostring(err)
    end
    local n
    n, err = decode_len(hdr, max_reply or CONTROL_MAX)
    if not n then
        sock:close()
        return nil, "control socket reply: " .. err
    end
    local body
    body, err = sock:receive(n)
    sock:close()
    if not body then
        return nil, "read from control socket: " .. tostring(err)
    end
    local reply = json.decode(body)
    if type(reply) ~= "table" then
        return nil, "control socket reply is not a JSON object"
    end
    return reply
end

-- A request gave up waiting (504): the supervisor kills the stuck worker before the 504 goes out, so the next
-- request to this function cold-starts a fresh worker instead of racing the kill. The round trip is a millisecond.
--- One request/reply with the supervisor (used by the /_fn/* endpoints): req is an encoded frame. Returns the
-- decoded reply table, or nil and an error.
_M.control = control_call

local function timed_out(fn, w, request_id, what)
    log(WARN, "fastfn: function ", fn.name, " (", fn.id, ") timed out (", what, "), request ", request_id)
    local _, err = control_call(fn.timed_out_frames[w])
    if err then
        log(WARN, "fastfn: timed_out notice for ", fn.id, " not delivered: ", err)
    end
end

local function connect(fn, w)
    if not socket_exists(fn.sockets[w]) then
        return nil, MISSING
    end
    local sock = tcp()
    sock:settimeouts(fn.connect_timeout_ms, fn.timeout_ms, fn.timeout_ms)
    local ok, err = sock:connect(fn.sock_uris[w])
    if not ok then
        return nil, err
    end
    return sock
end

-- A new connection: pooled ones are closed until connect() opens a fresh one. Used after a pooled connection turned
-- out dead and after a cold start: whatever idles in the pool then predates the worker that now listens.
local function connect_fresh(fn, w)
    local sock, err = connect(fn, w)
    local drained = 0
    while sock and sock:getreusedtimes() > 0 and drained <= POOL_SIZE do
        sock:close()
        drained = drained + 1
        sock, err = connect(fn, w)
    end
    return sock, err
end

-- A connection to worker w of the function's pool, cold-starting it when nobody listens (`fresh`: see
-- connect_fresh). When it cannot be started (crashed and held back), one other worker of the pool is tried.
-- Returns sock, state, w; or nil, state, status, message.
local function open(fn, w, request_id, fresh)
    local sock, err
    if fresh then
        sock, err = connect_fresh(fn, w)
    else
        sock, err = connect(fn, w)
    end
    if sock then
        return sock, WARM, w
    end
    if err == "timeout" then
        timed_out(fn, w, request_id, "connect")
        return nil, WARM, 504, "runtime timeout"
    end
    if not NOT_LISTENING[err] then
        log(WARN, "fastfn: function ", fn.name, " (", fn.id, "): connect: ", err, ", request ", request_id)
        return nil, WARM, 503, "runtime down"
    end

    local reply, cerr = control_call(fn.ensure_frames[w])
    if reply and reply.ok == true then
        sock, err = connect_fresh(fn, w)
        if sock then
            return sock, COLD, w
        end
        cerr = "connect after cold start: " .. tostring(err)
    end
    if fn.pool > 1 then
        local other = w % fn.pool + 1
        sock = connect(fn, other)
        if sock then
            return sock, WARM, other
        end
    end
    log(WARN, "fastfn: cold start of ", fn.name, " (", fn.id, ") worker ", w - 1, " failed: ",
        cerr or tostring(reply and reply.error), ", request ", request_id)
    return nil, COLD, 503, "runtime down"
end

-- The worker of the pool for the next request: the one with the fewest requests in flight from this nginx worker,
-- looking from the round-robin position on, so that at low load the requests still rotate (and every worker of
-- the pool gets started under load), and a worker busy with a slow request (a blocking Python or PHP handler holds
-- its process) is passed over while another one is free.
local function pick(fn)
    local pool, inflight = fn.pool, fn.inflight
    local start = fn.next_worker % pool + 1
    fn.next_worker = start
    local best, fewest = start, inflight[start]
    if fewest > 0 then
        for i = 1, pool - 1 do
            local w = (start + i - 1) % pool + 1
            local n = inflight[w]
            if n < fewest then
                best, fewest = w, n
                if n == 0 then
                    break
                end
            end
        end
    end
    return best
end
_M.pick = pick

local exchange

--- Sends payload (the encoded {"event": …}) to fn's worker. Returns envelope, nil, nil, state on success, or
-- nil, status, message, state. `idempotent` (GET, HEAD): a worker that dies before answering is retried once, on a
-- new connection, as nginx's proxy_next_upstream does; other methods get 502 (the handler may have run).
function _M.call(fn, payload, request_id, idempotent)
    local w = pick(fn)
    local inflight = fn.inflight
    inflight[w] = inflight[w] + 1
    -- pcall: the count must come down even if the exchange raises.
    local ok, env, status, msg, state = pcall(exchange, fn, w, payload, request_id, idempotent)
    inflight[w] = inflight[w] - 1
    if not ok then
        error(env, 0)
    end
    return env, status, msg, state
end

exchange = function(fn, w, payload, request_id, idempotent)
    local sock, state, status, msg = open(fn, w, request_id, false)
    if not sock then
        return nil, status, msg, state
    end
    w = status
    local req = { frame_header(#payload), payload }

    for attempt = 1, 2 do
        local reused = sock:getreusedtimes() > 0
        local retry = attempt == 1 and (idempotent or reused)
        local ok, err = sock:send(req)
        local hdr
        if ok then
            hdr, err = sock:receive(4)
        end
        if not hdr then
            sock:close()
            if err == "timeout" then
                timed_out(fn, w, request_id, ok and "read" or "send")
                return nil, 504, "runtime timeout", state
            end
            if not (retry and (not ok or DEAD_WHILE_IDLE[err])) then
                log(WARN, "fastfn: function ", fn.name, " (", fn.id, "): ", ok and "read" or "send", ": ", err,
                    ", request ", request_id)
                return nil, 502, "runtime error", state
            end
            -- The pooled connection died while idle, or the worker died before answering an idempotent request:
            -- once more on a new connection (which may cold-start).
            log(INFO, "fastfn: connection to ", fn.id, " was dead (", ok and "read" or "send", ": ", err,
                "), retrying, request ", request_id)
            -- A worker that died (with the request, or while idle) may still be going down: the retry goes to
            -- another one of the pool when there is one.
            if fn.pool > 1 then
                w = w % fn.pool + 1
            end
            local state2
            sock, state2, status, msg = open(fn, w, request_id, true)
            if state2 == COLD then
                state = COLD
            end
            if not sock then
                if reused then
                    return nil, status, msg, state
                end
                -- The worker died while it had the request: that is the answer, whatever the retry found.
                return nil, 502, "runtime error", state
            end
            w = status
        else
            local n, lerr = decode_len(hdr, MAX_RESPONSE)
            if not n then
                sock:close()
                log(WARN, "fastfn: function ", fn.name, " (", fn.id, "): bad frame: ", lerr, ", request ",
                    request_id)
                return nil, 502, "invalid runtime response", state
            end
            local body
            body, err = sock:receive(n)
            if not body then
                sock:close()
                if err == "timeout" then
                    timed_out(fn, w, request_id, "read")
                    return nil, 504, "runtime timeout", state
                end
                log(WARN, "fastfn: function ", fn.name, " (", fn.id, "): read: ", err, ", request ", request_id)
                return nil, 502, "runtime error", state
            end
            local env = json.decode(body)
            if type(env) ~= "table" then
                sock:close()
                log(WARN, "fastfn: function ", fn.name, " (", fn.id, "): response frame is not a JSON object",
                    ", request ", request_id)
                return nil, 502, "invalid runtime response", state
            end
            ok, err = sock:setkeepalive(KEEPALIVE_MS, POOL_SIZE)
            if not ok then
                log(INFO, "fastfn: keepalive for ", fn.id, " refused: ", err)
            end
            return env, nil, nil, state
        end
    end
    -- Not reached: the second attempt always returns.
    return nil, 502, "runtime error", state
end

return _M
