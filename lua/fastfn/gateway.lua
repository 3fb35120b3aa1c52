-- Phase entry points called by nginx.conf (nginx-templates/nginx.conf.tera).
--
--   init(opts)     init_by_lua, in the master: load and index the catalog; workers inherit it by fork.
--   serve()        content phase of `location /`: route, limit, build the event, dispatch, write the envelope.
--   health()       /_fn/health.
--   not_found()    the closed control-plane locations.
--   nginx_error()  the `error_page … /_fastfn_error` location: errors nginx raises itself, as JSON.

local ngx = ngx
require "resty.core"

local json = require("cjson.safe").new()
if json.encode_escape_forward_slash then   -- OpenResty's cjson: keep "/" readable in paths
    json.encode_escape_forward_slash(false)
end
local router = require "fastfn.router"
local catalog = require "fastfn.catalog"
local event = require "fastfn.event"
local dispatch = require "fastfn.dispatch"
local response = require "fastfn.response"
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
}

--- init_by_lua: opts = { catalog_path, control_socket, mode = "dev"|"run", cold_start_timeout_ms }.
-- Raises an error naming the catalog file when it cannot be used: nginx then exits at start-up with
-- "init_by_lua error: fastfn: invalid catalog <path>: <problem>" in its error log. (`nginx -t` does not run
-- init_by_lua, so it does not check the catalog.)
function _M.init(opts)
    if type(opts) ~= "table" then
        error("fastfn.gateway.init: opts must be a table", 2)
    end
    if opts.mode ~= "dev" and opts.mode ~= "run" then
        error("fastfn.gateway.init: mode must be \"dev\" or \"run\", got " .. tostring(opts.mode), 2)
    end
    local ok, err = pcall(dispatch.configure, opts)
    if not ok then
        error("fastfn.gateway.init: " .. tostring(err), 2)
    end

    index = catalog.load(opts.catalog_path)
    for i = 1, #index.function_list do
        dispatch.prepare(index.function_list[i])
    end
    mode = opts.mode
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

local function serve()
    local method = get_method()
    local path = router.normalize(var.uri)
    local fn, params, allow
    if path then
        fn, params, allow = index.router:match(path, method)
    end
    if not fn then
        discard_body()
        if params == "conflict" then
            return response.error(409, "ambiguous function")
        elseif params == "method" then
            return response.error(405, "method not allowed", { Allow = allow })
        end
        return response.error(404, "not found")
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

    local id, ts = event.new_id()
    wrapper.event = event.build(fn, method, path, params, body, id, ts)
    local payload, err = json.encode(wrapper)
    wrapper.event = nil
    if not payload then
        error("cannot encode the event: " .. tostring(err))
    end

    local env, status, msg, state = dispatch.call(fn, payload, id)
    if not env then
        return response.error(status, msg, STATE_HEADERS[state])
    end
    return response.envelope(env, STATE_HEADERS[state], id)
end

local function on_exception(err)
    return traceback(err, 2)
end

--- content_by_lua of `location /`. A Lua error anywhere in the request becomes 500 gateway exception.
function _M.serve()
    local ok, err = xpcall(serve, on_exception)
    if not ok then
        wrapper.event = nil
        log(ERR, "fastfn: gateway exception: ", err)
        if ngx.headers_sent then
            return ngx.exit(ngx.ERROR)
        end
        -- Drop whatever the failed attempt had set already.
        local set = ngx.resp.get_headers(0, true)
        for name in pairs(set) do
            ngx.header[name] = nil
        end
        return response.error(500, "gateway exception")
    end
end

local HEALTH_BODY = '{"status":"ok"}'

--- /_fn/health: the public summary only, for now.
function _M.health()
    ngx.status = 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #HEALTH_BODY
    ngx.print(HEALTH_BODY)
end

--- The control plane is closed: every /_fn/* and /console/* path but health answers 404.
function _M.not_found()
    discard_body()
    return response.error(404, "not found")
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
