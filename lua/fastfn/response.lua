-- Everything the gateway writes to the HTTP client goes through here: `error` is the one exit for gateway-generated
-- statuses (always `{"error": …}` JSON), `envelope` validates and writes a worker's response envelope (docs/wire.md).

local ngx = ngx
local json = require("cjson.safe").new()

local ngx_header = ngx.header
local ngx_print = ngx.print
local decode_base64 = ngx.decode_base64
local log = ngx.log
local WARN = ngx.WARN
local find = string.find
local lower = string.lower
local floor = math.floor
local type = type
local pairs = pairs

local _M = { _VERSION = "0.1.0" }

local STATE_HEADER = "X-FastFN-Function-State"
_M.STATE_HEADER = STATE_HEADER

local INVALID = "invalid runtime response"

-- Encoded bodies of the error messages, built on first use (the set of messages is small and fixed).
local error_bodies = {}

local function error_body(msg)
    local body = error_bodies[msg]
    if not body then
        body = json.encode({ error = msg })
        error_bodies[msg] = body
    end
    return body
end

--- The single exit for gateway errors: status, Content-Type: application/json, body {"error": msg}.
-- headers (optional) is a table of extra response headers, e.g. { Allow = "GET, POST" }.
function _M.error(status, msg, headers)
    local body = error_body(msg)
    ngx.status = status
    ngx_header["Content-Type"] = "application/json"
    ngx_header["Content-Length"] = #body
    if headers then
        for k, v in pairs(headers) do
            ngx_header[k] = v
        end
    end
    ngx_print(body)
end

-- Headers a worker may not set: hop-by-hop ones, and the length, which the gateway computes itself.
--- OPTIONS on a path that exists: 204 with the methods it answers.
function _M.options(allow)
    ngx.status = 204
    ngx_header["Allow"] = allow
end

local FORBIDDEN = {
    ["connection"] = true, ["keep-alive"] = true, ["transfer-encoding"] = true, ["content-length"] = true,
    ["te"] = true, ["trailer"] = true, ["upgrade"] = true, ["proxy-connection"] = true,
}

-- name -> true (allowed) or false (dropped). Worker header names repeat, so the verdict is cached (bounded).
local name_ok, name_ok_n = {}, 0
local NAME_OK_MAX = 1024

local function allowed_name(name)
    local ok = name_ok[name]
    if ok == nil then
        ok = find(name, "^[A-Za-z0-9!#$%%&'*+.^_`|~-]+$") ~= nil and not FORBIDDEN[lower(name)]
        if name_ok_n < NAME_OK_MAX then
            name_ok_n = name_ok_n + 1
            name_ok[name] = ok
        end
    end
    return ok
end

local function bad_value(v)
    return find(v, "[\r\n%z]") ~= nil
end

local function absent(v)
    return v == nil or v == json.null
end

-- Strict validation. Returns status, headers (or nil), body (string, possibly ""); or nil and a reason for the log.
local function check(env)
    if type(env) ~= "table" then
        return nil, "envelope is not an object"
    end
    local status = env.status
    if type(status) ~= "number" or floor(status) ~= status or status < 100 or status > 599 then
        return nil, "status is not an integer in 100..599"
    end
    local headers = env.headers
    if absent(headers) then
        headers = nil
    elseif type(headers) ~= "table" then
        return nil, "headers is not an object"
    else
        for k, v in pairs(headers) do
            if type(k) ~= "string" then
                return nil, "headers is not an object"
            end
            if type(v) == "table" then
                local n = #v
                for i, item in pairs(v) do
                    if type(i) ~= "number" or i < 1 or i > n or type(item) ~= "string" then
                        return nil, "header " .. k .. " is not a string or an array of strings"
                    end
                end
            elseif type(v) ~= "string" then
                return nil, "header " .. k .. " is not a string or an array of strings"
            end
        end
    end
    local is_base64 = env.is_base64
    local body
    if absent(is_base64) or is_base64 == false then
        body = env.body
        if absent(body) then
            body = ""
        elseif type(body) ~= "string" then
            return nil, "body is not a string"
        end
    elseif is_base64 == true then
        local b64 = env.body_base64
        if type(b64) ~= "string" then
            return nil, "is_base64 without a body_base64 string"
        end
        body = decode_base64(b64)
        if not body then
            return nil, "body_base64 is not valid base64"
        end
    else
        return nil, "is_base64 is not a boolean"
    end
    return status, headers, body
end

--- Writes a worker's envelope, or 502 invalid runtime response when it is malformed. extra: headers the gateway adds
-- after the worker's (they win). request_id is for the log line.
function _M.envelope(env, extra, request_id)
    local status, headers, body = check(env)
    if not status then
        log(WARN, "fastfn: ", INVALID, " (", headers, "), request ", request_id)
        return _M.error(502, INVALID, extra)
    end
    ngx.status = status
    if headers then
        for name, v in pairs(headers) do
            if allowed_name(name) then
                if type(v) == "string" then
                    if not bad_value(v) then
                        ngx_header[name] = v
                    end
                else
                    local keep, nkeep, dropped = v, #v, false
                    for i = 1, #v do
                        if bad_value(v[i]) then
                            dropped = true
                            break
                        end
                    end
                    if dropped then
                        keep, nkeep = {}, 0
                        for i = 1, #v do
                            if not bad_value(v[i]) then
                                nkeep = nkeep + 1
                                keep[nkeep] = v[i]
                            end
                        end
                    end
                    if nkeep > 0 then
                        ngx_header[name] = keep
                    end
                end
            end
        end
    end
    if extra then
        for k, v in pairs(extra) do
            ngx_header[k] = v
        end
    end
    -- After the worker's headers, so a handler cannot forge it.
    ngx_header["X-FastFN-Request-Id"] = request_id
    ngx_header["Content-Length"] = #body
    if body ~= "" then
        ngx_print(body)
    end
end

-- Exposed for tests and for the gateway's exception path.
_M.check_envelope = check
_M.allowed_name = allowed_name

return _M
