-- Builds the event a handler receives (docs/event.md) from the current request.

local ngx = ngx
local var = ngx.var
local get_uri_args = ngx.req.get_uri_args
local get_headers = ngx.req.get_headers
local now = ngx.now
local worker_pid = ngx.worker.pid
local find = string.find
local sub = string.sub
local match = string.match
local gmatch = string.gmatch
local format = string.format
local concat = table.concat
local floor = math.floor
local type = type
local rawget = rawget

local _M = { _VERSION = "0.1.0" }

local MAX_ARGS = 100
local MAX_HEADERS = 100

-- Per nginx worker: its pid (known only after the fork, so taken on first use), the `context.gateway` table (never
-- mutated, so shared by all events), and the counter behind the 6 digits of the request id.
local pid, gateway_ctx
local counter = 0

--- A fresh request id and its timestamp: "req-<epoch ms>-<worker pid>-<6 digits>", ms.
--- A request id and the request's time in ms: (id, ts number, ts as text).
function _M.new_id()
    if not pid then
        pid = worker_pid()
        gateway_ctx = { worker_pid = pid }
    end
    counter = counter + 1
    if counter > 999999 then
        counter = 0
    end
    local ts = floor(now() * 1000 + 0.5)
    local ts_text = format("%d", ts)
    return "req-" .. ts_text .. "-" .. pid .. format("-%06d", counter), ts, ts_text
end

local function trim(s)
    return match(s, "^%s*(.-)%s*$")
end

-- session = {id, raw, cookies}: cookies split on ";", values not URL-decoded, the last duplicate wins.
local function session(raw)
    local cookies = {}
    for pair in gmatch(raw, "[^;]+") do
        local eq = find(pair, "=", 1, true)
        if eq then
            local name = trim(sub(pair, 1, eq - 1))
            if name ~= "" then
                cookies[name] = trim(sub(pair, eq + 1))
            end
        end
    end
    return {
        id = cookies.session_id or cookies.sessionid or cookies.sid,
        raw = raw,
        cookies = cookies,
    }
end
_M.session = session

local function first(v)
    if type(v) == "table" then
        return v[1]
    end
    return v
end

--- The event for the current request. fn: catalog function; path: normalised path; params: from the router; body:
-- string or nil; id, ts: from new_id().
-- The path (ngx.var.uri) is percent-decoded once by nginx, so param values are already unescaped. They are not
-- unescaped a second time (upstream did): that would turn "%252e%252e" into "..", past the gateway's `..` check.
--- The event as a Lua table (for Lua functions, which run in this process).
function _M.build(fn, method, path, params, body, id, ts)
    -- Names are lower-cased already; rawget skips the normalising __index of a missed lookup.
    local headers = get_headers(MAX_HEADERS)
    local cookie = rawget(headers, "cookie")
    if type(cookie) == "table" then
        cookie = concat(cookie, "; ")
    end

    return {
        id = id,
        ts = ts,
        method = method,
        path = path,
        raw_path = var.request_uri,
        query = get_uri_args(MAX_ARGS),
        params = params,
        path_params = params,
        headers = headers,
        body = body,
        session = cookie and session(cookie) or nil,
        env = fn.env,
        client = { ip = var.remote_addr, ua = first(rawget(headers, "user-agent")) },
        context = {
            request_id = id,
            runtime = fn.runtime,
            function_name = fn.name,
            version = fn.version,
            timeout_ms = fn.timeout_ms,
            max_body_bytes = fn.max_body_bytes,
            gateway = gateway_ctx,
        },
    }
end

local json = require("cjson.safe").new()
if json.encode_escape_forward_slash then -- OpenResty's cjson: keep "/" readable in paths
    json.encode_escape_forward_slash(false)
end
local encode = json.encode

-- The parts of a function's event that never change, encoded once per nginx worker: everything in `context` after
-- the request id, and `env`. Kept on the catalog entry (a reload loads a new catalog, hence new entries).
local function constant_tail(fn)
    local tail = fn.event_tail
    if not tail then
        tail = ',"runtime":' .. encode(fn.runtime)
            .. ',"function_name":' .. encode(fn.name)
            .. ',"version":' .. encode(fn.version)
            .. ',"timeout_ms":' .. format("%d", fn.timeout_ms)
            .. ',"max_body_bytes":' .. format("%d", fn.max_body_bytes)
            .. ',"gateway":{"worker_pid":' .. pid .. '}}'
        if fn.env then
            tail = tail .. ',"env":' .. encode(fn.env)
        end
        tail = tail .. '}}'
        fn.event_tail = tail
    end
    return tail
end

--- The frame payload for a worker, `{"event": …}`, with the same content as encoding build()'s table but built
-- from pieces: the per-function constants are encoded once, and only the request's own parts go through cjson
-- (a third of the gateway's CPU per worker call went into building and encoding the table).
function _M.encode(fn, method, path, params, body, id, ts_text)
    local headers = get_headers(MAX_HEADERS)
    local cookie = rawget(headers, "cookie")
    if type(cookie) == "table" then
        cookie = concat(cookie, "; ")
    end
    local params_json = encode(params)
    local ua = first(rawget(headers, "user-agent"))
    -- id and method are plain ASCII (digits and dashes; an nginx method token): no escaping needed.
    local out = {
        '{"event":{"id":"', id,
        '","ts":', ts_text,
        ',"method":"', method,
        '","path":', encode(path),
        ',"raw_path":', encode(var.request_uri),
        ',"query":', encode(get_uri_args(MAX_ARGS)),
        ',"params":', params_json,
        ',"path_params":', params_json,
        ',"headers":', encode(headers),
        body and ',"body":' or "", body and encode(body) or "",
        cookie and ',"session":' or "", cookie and encode(session(cookie)) or "",
        ',"client":{"ip":', encode(var.remote_addr), ua and ',"ua":' or "", ua and encode(ua) or "",
        '},"context":{"request_id":"', id, '"',
        constant_tail(fn),
    }
    return concat(out)
end

return _M
