-- Phase entry points called by nginx.conf (nginx-templates/nginx.conf.tera).
--
--   init(opts)     init_by_lua, in the master: read the settings file, load and index the catalog, compile the
--                  control-plane guard; workers inherit it all by fork.
--   serve()        content phase of `location /`: route, limit, build the event, dispatch, write the envelope.
--   nginx_error()  the `error_page … /_fastfn_error` location: errors nginx raises itself, as JSON.
--
-- /_fn/* and /console/* have their own locations (access phase: fastfn.guard). nginx matches locations
-- case-sensitively, so other spellings of those prefixes (/_FN/…, /Console) land in serve(), which answers them 404.

local ngx = ngx
require "resty.core"

local json = require("cjson.safe").new()
if json.encode_escape_forward_slash then   -- OpenResty's cjson: keep "/" readable in paths
    json.encode_escape_forward_slash(false)
end
local router = require "fastfn.router"
local limits = require "fastfn.limits"
local metrics = require "fastfn.metrics"
local allows_host = require("fastfn.hostmatch").allows
local catalog = require "fastfn.catalog"
local event = require "fastfn.event"
local dispatch = require "fastfn.dispatch"
local lua_runtime = require "fastfn.lua_runtime"
local response = require "fastfn.response"
local guard = require "fastfn.guard"
require "fastfn.frame"

local _M = { _VERSION = "0.1.0" }

local var = ngx.var
local req = ngx.req
local get_method = req.get_method
local read_body = req.read_body
local get_body_data = req.get_body_data
local get_body_file = req.get_body_file
local discard_body = req.discard_body
local log = ngx.log
local ERR = ngx.ERR
local open = io.open
local byte = string.byte
local sub = string.sub
local lower = string.lower
local floor = math.floor
local format = string.format
local type = type
local pairs = pairs
local tostring = tostring
local tonumber = tonumber
local xpcall = xpcall
local traceback = debug.traceback

-- Set by init(); plain upvalues, inherited by every worker through the fork.
local index, mode

local STATE_HEADERS = {
    warm = { [response.STATE_HEADER] = "warm" },
    cold = { [response.STATE_HEADER] = "cold" },
}

local MESSAGES = {
    [400] = "bad request",
    [404] = "not found",
    [405] = "method not allowed",
    [408] = "request timeout",
    [411] = "length required",
    [413] = "payload too large",
    [414] = "uri too long",
    [431] = "request header too large",
    [494] = "request header too large",
    [500] = "internal error",
    [501] = "not implemented",
    [502] = "bad gateway",
    [503] = "service unavailable",
    [504] = "gateway timeout",
    [505] = "http version not supported",
}

local function nonempty_string(v)
    return type(v) == "string" and v ~= ""
end

-- Reads, decodes and checks the settings file the supervisor writes (src/gateway.rs). Returns the settings table, or
-- nil and the problem, naming the field; raises when the file cannot be read.
local function read_settings(path)
    local f, err = open(path, "rb")
    if not f then
        -- io.open's message already names the file.
        error(format("fastfn: cannot read settings %s", tostring(err)), 0)
    end
    local text
    text, err = f:read("*a")
    f:close()
    if not text then
        error(format("fastfn: cannot read settings %s: %s", path, tostring(err)), 0)
    end
    local s
    s, err = json.decode(text)
    if s == nil then
        return nil, "not valid JSON: " .. tostring(err)
    end
    if type(s) ~= "table" then
        return nil, "the top level must be an object"
    end
    if s.mode ~= "dev" and s.mode ~= "run" then
        return nil, "mode must be \"dev\" or \"run\", got " .. tostring(s.mode)
    end
    if not nonempty_string(s.catalog_path) then
        return nil, "catalog_path must be a non-empty string"
    end
    if not nonempty_string(s.control_socket) then
        return nil, "control_socket must be a non-empty string"
    end
    local t = s.cold_start_timeout_ms
    if type(t) ~= "number" or t < 1 or floor(t) ~= t then
        return nil, "cold_start_timeout_ms must be a positive integer"
    end
    if type(s.guard) ~= "table" then
        return nil, "guard must be an object"
    end
    return s
end

-- The per-function env file the supervisor writes (src/supervise/instance.rs): { "<fn id>": { KEY = "value" } }.
-- Values are never logged; a broken file stops the start, naming the file.
local function read_secrets(path)
    if not nonempty_string(path) then
        error("fastfn: invalid settings: secrets_path must be a non-empty string", 0)
    end
    local f, err = open(path, "rb")
    if not f then
        error(format("fastfn: cannot read secrets %s", tostring(err)), 0)
    end
    local text = f:read("*a")
    f:close()
    local secrets = json.decode(text or "")
    if type(secrets) ~= "table" then
        error(format("fastfn: invalid secrets file %s: not a JSON object", path), 0)
    end
    for id, env in pairs(secrets) do
        if type(env) ~= "table" then
            error(format("fastfn: invalid secrets file %s: entry %s is not an object", path, tostring(id)), 0)
        end
        for key, value in pairs(env) do
            if type(value) ~= "string" then
                error(format("fastfn: invalid secrets file %s: %s.%s is not a string", path, tostring(id),
                    tostring(key)), 0)
            end
        end
    end
    return secrets
end

--- init_by_lua: opts = { settings_path }. The settings file (JSON, written by the supervisor):
--   { mode = "dev"|"run", catalog_path, control_socket, cold_start_timeout_ms, guard = { … } (fastfn.guard) }
-- Raises an error naming the file and the field when it cannot be used, and likewise for the catalog: nginx then
-- exits at start-up with "init_by_lua error: fastfn: invalid settings <path>: <problem>" (or "invalid catalog") in its
-- error log. (`nginx -t` does not run init_by_lua, so it checks neither file.)
function _M.init(opts)
    if type(opts) ~= "table" or not nonempty_string(opts.settings_path) then
        error("fastfn.gateway.init: opts.settings_path must be a non-empty string", 2)
    end
    local path = opts.settings_path
    local settings, err = read_settings(path)
    if not settings then
        error(format("fastfn: invalid settings %s: %s", path, err), 0)
    end
    local ok
    ok, err = pcall(dispatch.configure, settings)
    if not ok then
        error(format("fastfn: invalid settings %s: %s", path, tostring(err)), 0)
    end
    ok, err = guard.configure(settings.guard, settings.mode)
    if not ok then
        error(format("fastfn: invalid settings %s: %s", path, err), 0)
    end

    metrics.init()
    index = catalog.load(settings.catalog_path)
    local secrets = read_secrets(settings.secrets_path)
    for i = 1, #index.function_list do
        local fn = index.function_list[i]
        dispatch.prepare(fn)
        metrics.prepare(fn)
        -- Each function gets only its own values (event.env); nothing store-wide.
        fn.env = secrets[fn.id]
    end
    mode = settings.mode
end

-- Whether this nginx worker's master is gone (its parent changed): with the supervisor SIGKILLed, the master dies by
-- its parent-death signal, but nginx workers would live on, holding the port. Without the FFI, never.
local master_gone
do
    local ok, ffi = pcall(require, "ffi")
    if ok then
        pcall(ffi.cdef, "int getppid(void);")
        local C = ffi.C
        local master
        master_gone = function()
            local ppid = C.getppid()
            master = master or ppid
            return ppid ~= master
        end
    else
        master_gone = function()
            return false
        end
    end
end

local function watch_master(premature)
    if premature then
        return
    end
    if master_gone() then
        ngx.log(ngx.WARN, "fastfn: the nginx master is gone (the supervisor was killed): this worker exits")
        os.exit(1)
    end
end

--- init_worker_by_lua: remembers the master and checks once a second that it is still there.
function _M.init_worker()
    master_gone()
    local ok, err = ngx.timer.every(1, watch_master)
    if not ok then
        ngx.log(ngx.ERR, "fastfn: cannot start the master watch: ", err)
    end
    ok, err = ngx.timer.every(1, metrics.flush)
    if not ok then
        ngx.log(ngx.ERR, "fastfn: cannot start the metrics flush: ", err)
    end
end

--- The catalog functions by id (for the metrics endpoint's labels).
function _M.functions()
    return index.functions
end

--- "dev" or "run", for the endpoints that will differ by mode.
function _M.mode()
    return mode
end

-- The request body: a string, or nil when there is none; or nil and "too large" when it exceeds limit, or nil and
-- another error when nginx's temp file cannot be read.
local function body_within(limit)
    read_body()
    local body = get_body_data()
    if body then
        if #body > limit then
            return nil, "too large"
        end
        return body
    end
    local path = get_body_file()
    if not path then
        return nil
    end
    local f, err = open(path, "rb")
    if not f then
        return nil, err
    end
    local size
    size, err = f:seek("end")
    if size and size > limit then
        f:close()
        return nil, "too large"
    end
    if size then
        size, err = f:seek("set", 0)
    end
    if size then
        body, err = f:read("*a")
    end
    f:close()
    if not body then
        return nil, path .. ": " .. tostring(err)
    end
    if body == "" then
        return nil
    end
    return body
end

local wrapper = {}

local REQUEST_ID = "X-FastFN-Request-Id"

-- A function that cannot run until its folder is fixed (a Go compile error, a failed dependency install): the
-- reason as `detail` in dev, a generic answer in run mode.
local function failed(status, message, detail)
    local body = { error = message }
    if mode == "dev" then
        body.detail = detail
    end
    local text = json.encode(body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #text
    if status == 503 then
        ngx.header["Retry-After"] = "30"
    end
    ngx.print(text)
end
local RETRY_LATER = { ["Retry-After"] = "1" }
local now = ngx.now
local start_time = ngx.req.start_time

-- fn.config.json include_debug_headers: what served the request and how long the worker took (opt-in, so the
-- table is built only for those functions).
local function debug_headers(fn, id, started, state)
    ngx.update_time()
    return {
        [response.STATE_HEADER] = state,
        ["X-Fn-Request-Id"] = id,
        ["X-Fn-Runtime"] = fn.runtime,
        ["X-Fn-Function"] = fn.name,
        ["X-Fn-Version"] = fn.version,
        ["X-Fn-Latency-Ms"] = tostring(math.floor((now() - started) * 1000 + 0.5)),
    }
end

local UNDERSCORE, SLASH, LC, UC = byte("_"), byte("/"), byte("c"), byte("C")

-- Whether a normalised path's first segment is `_fn` or `console` in any letter case: the control plane's prefixes,
-- which no function may answer. Allocates only for paths that start with "_", "c" or "C".
local function reserved(path)
    local b = byte(path, 2)
    if b == UNDERSCORE then
        local b5 = byte(path, 5)
        return (b5 == nil or b5 == SLASH) and lower(sub(path, 2, 4)) == "_fn"
    elseif b == LC or b == UC then
        local b9 = byte(path, 9)
        return (b9 == nil or b9 == SLASH) and lower(sub(path, 2, 8)) == "console"
    end
    return false
end
_M.reserved = reserved

-- r: this request's { fn, slot } for _M.serve (the matched function, whether it holds a concurrency slot).
local function serve(r)
    local method = get_method()
    local path = router.normalize(var.uri)
    local fn, params, allow
    if path and not reserved(path) then
        -- HEAD is answered wherever GET is (the handler sees "HEAD"; nginx sends no body).
        fn, params, allow = index.router:match(path, method == "HEAD" and "GET" or method)
    end
    if not fn then
        discard_body()
        if params == "conflict" then
            return response.error(409, "ambiguous function")
        elseif params == "method" then
            if method == "OPTIONS" then
                return response.options(allow)
            end
            return response.error(405, "method not allowed", { Allow = allow })
        end
        return response.error(404, "not found")
    end

    r.fn = fn
    local hosts = fn.allow_hosts
    if hosts and not allows_host(hosts, guard.request_host()) then
        discard_body()
        return response.error(421, "host not allowed")
    end
    if fn.misconfigured then
        discard_body()
        return response.error(503, "function misconfigured")
    end
    if fn.build_error then
        discard_body()
        return failed(500, "function build failed", fn.build_error)
    end
    if fn.deps_error then
        discard_body()
        return failed(503, "dependencies not installed", fn.deps_error)
    end

    local limit = fn.max_body_bytes
    local cl = var.http_content_length
    if cl and (tonumber(cl) or 0) > limit then
        discard_body()
        return response.error(413, "payload too large")
    end
    local body, berr = body_within(limit)
    if berr then
        if berr == "too large" then
            return response.error(413, "payload too large")
        end
        log(ERR, "fastfn: cannot read the request body: ", berr)
        return response.error(500, "failed to read request body")
    end

    local admitted, queued_or_status, overflow = limits.acquire(fn)
    if not admitted then
        return response.error(queued_or_status, overflow, RETRY_LATER)
    end
    r.slot = true
    if queued_or_status then
        ngx.header["X-FastFN-Queued"] = "true"
    end

    local id, ts = event.new_id()
    local ev = event.build(fn, method, path, params, body, id, ts)
    local payload
    if fn.runtime ~= "lua" then
        wrapper.event = ev
        local err
        payload, err = json.encode(wrapper)
        wrapper.event = nil
        if not payload then
            error("cannot encode the event: " .. tostring(err))
        end
    end

    local started = fn.debug_headers and now()
    local env, status, msg, state
    if payload then
        env, status, msg, state = dispatch.call(fn, payload, id, method == "GET" or method == "HEAD")
    else
        -- Lua functions run in this nginx worker (fastfn.lua_runtime); fn.sockets is empty.
        env, status, msg, state = lua_runtime.call(fn, ev, id, mode == "dev")
    end
    local extra = STATE_HEADERS[state]
    if started then
        extra = debug_headers(fn, id, started, state)
    end
    if not env then
        ngx.header[REQUEST_ID] = id
        return response.error(status, msg, extra)
    end
    return response.envelope(env, extra, id)
end

local function on_exception(err)
    return traceback(err, 2)
end

--- content_by_lua of `location /`. A Lua error anywhere in the request becomes 500 gateway exception.
-- The request's concurrency slot is given back and the request counted here, at the end of the content phase,
-- rather than in a log phase: one Lua entry per request instead of two, and no ngx.ctx.
function _M.serve()
    local r = { fn = false, slot = false }
    local ok, err = xpcall(serve, on_exception, r)
    local fn = r.fn or nil
    if r.slot then
        limits.release(fn)
    end
    if not ok then
        wrapper.event = nil
        log(ERR, "fastfn: gateway exception: ", err)
        if ngx.headers_sent then
            metrics.record(fn, 500, now() - start_time())
            return ngx.exit(ngx.ERROR)
        end
        -- Drop whatever the failed attempt had set already.
        local set = ngx.resp.get_headers(0, true)
        for name in pairs(set) do
            ngx.header[name] = nil
        end
        response.error(500, "gateway exception")
    end
    metrics.record(fn, ngx.status, now() - start_time())
end

--- error_page … /_fastfn_error: answers nginx's own errors as {"error": …} JSON with the original status.
function _M.nginx_error()
    -- ngx.status is the original status here (nginx keeps it in r->err_status across the redirect).
    local status = ngx.status
    if status < 400 then
        status = 500
    end
    local msg = MESSAGES[status]
    if not msg then
        msg = status >= 500 and "internal error" or "request error"
    end
    return response.error(status, msg)
end

return _M
