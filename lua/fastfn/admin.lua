-- The /_fn/* endpoints. They run in the content phase, after fastfn.guard has let the request through (access
-- phase), and answer from the supervisor over its control socket: the supervisor is the one source of truth, and
-- the gateway never writes anything itself.
--
--   GET  /_fn/health    {"status":"ok|degraded"} (200/503) for everyone; the full snapshot for trusted callers
--   GET  /_fn/catalog   the catalog the supervisor serves from
--   POST /_fn/reload    re-discover the functions folder and reload the gateway
--   GET  /_fn/metrics   Prometheus text: requests by function and status, latency histograms, worker restarts
--   GET  /_fn/logs?file=error|access|runtime|all&lines=N&fn=NAME   the tail of the instance's logs
--   GET  /_fn/openapi.json  OpenAPI 3.1 of the public routes (and /_fn/* with FN_OPENAPI_INCLUDE_INTERNAL=1)
--   GET  /_fn/function-env?function=NAME[&runtime=RT]   the function's env, secret values <hidden>
--   PUT  /_fn/function-env?function=NAME[&runtime=RT]   {"KEY": "v" | {"value","is_secret"} | null | "<hidden>"}
--   GET  /_fn/function-config?function=NAME[&runtime=RT]  the folder's fn.config.json and what is applied
--   PUT  /_fn/function-config?function=NAME[&runtime=RT]  a whole new fn.config.json, validated strictly

local ngx = ngx
local json = require("cjson.safe").new()
local dispatch = require "fastfn.dispatch"
local frame = require "fastfn.frame"
local response = require "fastfn.response"
local metrics = require "fastfn.metrics"
local gateway = require "fastfn.gateway"

local control = dispatch.control
local encode_frame = frame.encode
local concat = table.concat
local sort = table.sort
local pairs = pairs
local ipairs = ipairs
local type = type
local tonumber = tonumber
local tostring = tostring

local _M = { _VERSION = "0.1.0" }

local STATUS = encode_frame(json.encode({ op = "status" }))
local CATALOG = encode_frame(json.encode({ op = "catalog" }))
local RELOAD = encode_frame(json.encode({ op = "reload" }))
-- A catalog (or its OpenAPI document, or a log tail) can be far larger than a status reply.
local MAX_CATALOG_REPLY = 64 * 1024 * 1024

local function send(status, content_type, text)
    ngx.status = status
    ngx.header["Content-Type"] = content_type
    ngx.header["Cache-Control"] = "no-store"
    ngx.header["Content-Length"] = #text
    if ngx.req.get_method() ~= "HEAD" then
        ngx.print(text)
    end
    return ngx.exit(status)
end

local function answer(status, body)
    return send(status, "application/json", json.encode(body) or '{"error":"cannot encode the answer"}')
end

-- A supervisor reply's `body` is the answer's JSON text, sent as it is (never decoded and re-encoded here: cjson
-- would turn empty arrays into objects).
local function relay(status, reply)
    if type(reply.body) ~= "string" then
        return response.error(502, "bad reply from the supervisor")
    end
    return send(status, "application/json", reply.body)
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
    return relay(status, reply)
end

local function catalog()
    local reply, err = control(CATALOG, MAX_CATALOG_REPLY)
    if not reply or reply.ok ~= true then
        ngx.log(ngx.WARN, "fastfn: /_fn/catalog: ", err or reply.error)
        return response.error(503, "supervisor unreachable")
    end
    return relay(200, reply)
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
    return relay(200, reply)
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
local function forward(req, max_reply)
    local reply, err = control(encode_frame(json.encode(req)), max_reply)
    if not reply then
        ngx.log(ngx.WARN, "fastfn: ", req.op, ": ", err)
        return response.error(503, "supervisor unreachable")
    end
    if reply.ok ~= true then
        local status = tonumber(reply.status) or 500
        return response.error(status, tostring(reply.error))
    end
    return relay(200, reply)
end

local function put_json(op)
    local req = selector(op)
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
    local decoded = json.decode(body)
    if type(decoded) ~= "table" then
        return response.error(400, "invalid json body")
    end
    req.body = decoded
    return forward(req)
end

local function getter(op)
    return function()
        local req = selector(op)
        if not req then
            return response.error(400, "repeated query argument")
        end
        return forward(req)
    end
end

local function putter(op)
    return function()
        return put_json(op)
    end
end

local function worker_metrics(snapshot)
    local label = metrics.label
    local lines = {
        "# HELP fastfn_worker_restarts_total Times a function's worker process was started again.",
        "# TYPE fastfn_worker_restarts_total counter",
    }
    local up = {
        "# HELP fastfn_worker_up Whether the function's worker process is running (it starts on first use).",
        "# TYPE fastfn_worker_up gauge",
    }
    local functions = snapshot and snapshot.functions
    if type(functions) == "table" then
        for i = 1, #functions do
            local f = functions[i]
            local labels = '{function="' .. label(f.name) .. '",runtime="' .. label(f.runtime) .. '"}'
            lines[#lines + 1] = "fastfn_worker_restarts_total" .. labels .. " " .. tostring(tonumber(f.restarts) or 0)
            up[#up + 1] = "fastfn_worker_up" .. labels .. " " .. (f.state == "running" and "1" or "0")
        end
    end
    for i = 1, #up do
        lines[#lines + 1] = up[i]
    end
    lines[#lines + 1] = "# HELP fastfn_up Whether every runtime the functions need is available (health 200)."
    lines[#lines + 1] = "# TYPE fastfn_up gauge"
    lines[#lines + 1] = "fastfn_up " .. ((snapshot and snapshot.status == "ok") and "1" or "0")
    return lines
end

local function metrics_text()
    local reply = control(STATUS)
    local snapshot = reply and reply.ok == true and reply.status or nil
    local text = metrics.render(gateway.functions(), worker_metrics(snapshot))
    return send(200, "text/plain; version=0.0.4; charset=utf-8", text)
end

local function logs()
    local args = ngx.req.get_uri_args(10)
    for _, k in ipairs({ "file", "lines", "fn" }) do
        if type(args[k]) == "table" then
            return response.error(400, "repeated query argument")
        end
    end
    local file = args.file or "all"
    if file ~= "all" and file ~= "error" and file ~= "access" and file ~= "runtime" then
        return response.error(400, "file must be one of error, access, runtime, all")
    end
    local lines = tonumber(args.lines or "100")
    if not lines or lines < 1 or lines > 5000 or lines % 1 ~= 0 then
        return response.error(400, "lines must be a whole number from 1 to 5000")
    end
    local fn = args.fn
    if fn == true then
        fn = nil
    end
    return forward({ op = "logs", file = file, lines = lines, fn = fn }, MAX_CATALOG_REPLY)
end

local function openapi()
    return forward({ op = "openapi", host = ngx.var.http_host }, MAX_CATALOG_REPLY)
end

local ENDPOINTS = {
    ["/_fn/health"] = { GET = health, HEAD = health },
    ["/_fn/catalog"] = { GET = catalog, HEAD = catalog },
    ["/_fn/reload"] = { POST = reload },
    ["/_fn/openapi.json"] = { GET = openapi, HEAD = openapi },
    ["/_fn/metrics"] = { GET = metrics_text, HEAD = metrics_text },
    ["/_fn/logs"] = { GET = logs },
    ["/_fn/function-env"] = { GET = getter("function-env"), PUT = putter("function-env-put") },
    ["/_fn/function-config"] = { GET = getter("function-config"), PUT = putter("function-config-put") },
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
