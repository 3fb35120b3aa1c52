-- The /_fn/* endpoints. They run in the content phase, after fastfn.guard has let the request through (access
-- phase), and answer from the supervisor over its control socket: the supervisor is the one source of truth, and
-- the gateway never writes anything itself.
--
--   GET  /_fn/health    {"status":"ok|degraded"} (200/503) for everyone; the full snapshot for trusted callers
--   GET  /_fn/catalog   the catalog the supervisor serves from
--   POST /_fn/reload    re-discover the functions folder and reload the gateway

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

local ENDPOINTS = {
    ["/_fn/health"] = { GET = health, HEAD = health },
    ["/_fn/catalog"] = { GET = catalog, HEAD = catalog },
    ["/_fn/reload"] = { POST = reload },
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
