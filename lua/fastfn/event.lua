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
    return format("req-%d-%d-%06d", ts, pid, counter), ts
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

return _M
