-- The /_fn/* endpoints. They run in the content phase, after fastfn.guard has let the request through (access
-- phase), and answer from the supervisor over its control socket: the supervisor is the one source of truth, and
-- the gateway never writes anything itself.
--
--   GET  /_fn/health    {"status":"ok|degraded"} (200/503) for everyone; the full snapshot for trusted callers
--   GET  /_fn/catalog   the catalog the supervisor serves from
--   POST /_fn/reload    re-discover the functions folder and reload the gateway
--   GET  /_fn/function-env?function=NAME[&runtime=RT]   the function's env, secret values <hidden>
--   PUT  /_fn/function-env?function=NAME[&runtime=RT]   {"KEY": "v" | {"value","is_secret"} | null | "<hidden>"}

local ngx = ngx
local json = require("cjson.safe").new()
local dispatch = require "fastfn.dispatch"
local frame = require "fastfn.frame"
local response = require "fastfn.response"

local control = dispatch.control
local encode_frame = frame.encode
local concat = table.concat
local sort = table.sort
local pairs = pairs
local type = type
local tonumber = tonumber
local tostring = tostring

local _M = { _VERSION = "0.1.0" }

local STATUS = encode_frame(json.encode({ op = "status" }))
local CATALOG = encode_frame(json.encode({ op = "catalog" }))
local RELOAD = encode_frame(json.encode({ op = "reload" }))
-- A catalog of thousands of functions is far larger than a status reply.
local MAX_CATALOG_REPLY = 64 * 1024 * 1024

local function answer(status, body)
    local text = json.encode(body) or '{"error":"cannot encode the answer"}'
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    ngx.header["Content-Length"] = #text
    if ngx.req.get_method() ~= "HEAD" then
        ngx.print(text)
    end
    return ngx.exit(status)
end

local function health()
    local reply = control(STATUS)
    local snapshot = reply and reply.ok == true and reply.status
    local state = snapshot and snapshot.status or "degraded"
    local status = state == "ok" and 200 or 503
    if not ngx.ctx.fastfn_trusted then
        return answer(status, { status = state })
    end
    if not snapshot then
        return answer(503, { status = "degraded", error = "supervisor unreachable" })
    end
    return answer(status, snapshot)
end

local function catalog()
    local reply, err = control(CATALOG, MAX_CATALOG_REPLY)
    if not reply or reply.ok ~= true then
        ngx.log(ngx.WARN, "fastfn: /_fn/catalog: ", err or reply.error)
        return response.error(503, "supervisor unreachable")
    end
    return answer(200, reply.catalog)
end

local function reload()
    local reply, err = control(RELOAD)
    if not reply then
        ngx.log(ngx.WARN, "fastfn: /_fn/reload: ", err)
        return response.error(503, "supervisor unreachable")
    end
    if reply.ok ~= true then
        -- The folder is invalid: the last good catalog keeps serving, and the caller learns why.
        return answer(422, { error = "reload failed", detail = reply.error })
    end
    return answer(200, reply)
end

-- Largest body a control-plane write accepts.
local MAX_WRITE_BODY = 64 * 1024

-- `function` and `runtime` query arguments, as the supervisor's selector. A repeated argument is refused.
local function selector(op)
    local args = ngx.req.get_uri_args(10)
    local name, runtime = args["function"], args.runtime
    if type(name) == "table" or type(runtime) == "table" then
        return nil
    end
    return { op = op, name = name, runtime = runtime }
end

-- Forwards one request to the supervisor and answers with its result or its refusal.
local function forward(req)
    local reply, err = control(encode_frame(json.encode(req)))
    if not reply then
        ngx.log(ngx.WARN, "fastfn: ", req.op, ": ", err)
        return response.error(503, "supervisor unreachable")
    end
    if reply.ok ~= true then
        local status = tonumber(reply.status) or 500
        return response.error(status, tostring(reply.error))
    end
    return answer(200, reply.result)
end

local function function_env_get()
    local req = selector("function-env")
    if not req then
        return response.error(400, "repeated query argument")
    end
    return forward(req)
end

local function function_env_put()
    local req = selector("function-env-put")
    if not req then
        return response.error(400, "repeated query argument")
    end
    if (tonumber(ngx.var.http_content_length) or 0) > MAX_WRITE_BODY then
        return response.error(413, "payload too large")
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body or #body > MAX_WRITE_BODY then
        return response.error(body and 413 or 400, body and "payload too large" or "a JSON object body is required")
    end
    local env = json.decode(body)
    if type(env) ~= "table" then
        return response.error(400, "invalid json body")
    end
    req.env = env
    return forward(req)
end

local ENDPOINTS = {
    ["/_fn/health"] = { GET = health, HEAD = health },
    ["/_fn/catalog"] = { GET = catalog, HEAD = catalog },
    ["/_fn/reload"] = { POST = reload },
    ["/_fn/function-env"] = { GET = function_env_get, PUT = function_env_put },
}

-- Allow header per endpoint, built once.
local ALLOW = {}
for path, methods in pairs(ENDPOINTS) do
    local list = {}
    for m in pairs(methods) do
        list[#list + 1] = m
    end
    sort(list)
    ALLOW[path] = concat(list, ", ")
end

--- content_by_lua of `location /_fn/`.
function _M.serve()
    local path = ngx.var.uri
    local methods = ENDPOINTS[path]
    if not methods then
        ngx.req.discard_body()
        return response.error(404, "not found")
    end
    local handler = methods[ngx.req.get_method()]
    if not handler then
        ngx.req.discard_body()
        return response.error(405, "method not allowed", { Allow = ALLOW[path] })
    end
    return handler()
end

return _M
