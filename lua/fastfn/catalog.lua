-- Loads catalog.json (docs/catalog.md, schema version 1), validates every field the gateway relies on, and builds the
-- index the request path uses: functions by id and the router. Runs once, in init_by_lua; no ngx API is needed, so it
-- also runs under plain Lua. Failures name the file and the field, so `nginx -t` tells the operator what is wrong.

local json = require("cjson.safe").new()
local router = require "fastfn.router"
local shape = require "fastfn.shape"

local find = string.find
local format = string.format
local open = io.open
local type = type
local ipairs = ipairs
local next = next
local tostring = tostring

local hostmatch = require "fastfn.hostmatch"
local _M = { _VERSION = "0.1.0", SCHEMA_VERSION = 1 }

local MAX_SUN_PATH = 107  -- sizeof(sun_path) - 1 on Linux

local is_array = shape.is_array

local function is_object(t)
    if type(t) ~= "table" then
        return false
    end
    local k = next(t)
    return k == nil or type(k) == "string"
end

local is_int = shape.is_int

local function nonempty_string(v)
    return type(v) == "string" and v ~= ""
end

local function check_function(f, where)
    if not is_object(f) then
        return nil, where .. " is not an object"
    end
    local id = f.id
    if type(id) ~= "string" or #id ~= 16 or find(id, "[^0-9a-f]") then
        return nil, where .. ".id must be 16 lowercase hex characters"
    end
    if not nonempty_string(f.name) then
        return nil, where .. ".name must be a non-empty string"
    end
    if not nonempty_string(f.runtime) then
        return nil, where .. ".runtime must be a non-empty string"
    end
    local sockets = f.sockets
    if not is_array(sockets) then
        return nil, where .. ".sockets must be an array"
    end
    if #sockets == 0 and f.runtime ~= "lua" then
        return nil, where .. ".sockets must name at least one socket"
    end
    for i = 1, #sockets do
        local sock = sockets[i]
        if type(sock) ~= "string" or sock:sub(1, 1) ~= "/" then
            return nil, format("%s.sockets[%d] must be an absolute path", where, i - 1)
        end
        if #sock > MAX_SUN_PATH then
            return nil, format("%s.sockets[%d] is %d bytes, longer than a unix socket path can be (%d)", where, i - 1,
                               #sock, MAX_SUN_PATH)
        end
    end
    if not is_int(f.timeout_ms, 1) then
        return nil, where .. ".timeout_ms must be a positive integer"
    end
    if not is_int(f.max_body_bytes, 0) then
        return nil, where .. ".max_body_bytes must be a non-negative integer"
    end
    for _, k in ipairs({ "dir", "entry", "handler" }) do
        if f[k] ~= nil and type(f[k]) ~= "string" then
            return nil, where .. "." .. k .. " must be a string"
        end
    end
    if not is_int(f.max_concurrency, 0) or not is_int(f.max_queue, 0) then
        return nil, where .. ".max_concurrency and .max_queue must be non-negative integers"
    end
    if not is_int(f.queue_timeout_ms, 1) then
        return nil, where .. ".queue_timeout_ms must be a positive integer"
    end
    if f.overflow_status ~= 429 and f.overflow_status ~= 503 then
        return nil, where .. ".overflow_status must be 429 or 503"
    end
    local hosts = f.allow_hosts
    if hosts ~= nil then
        if not is_array(hosts) then
            return nil, where .. ".allow_hosts must be an array"
        end
        for i = 1, #hosts do
            if not nonempty_string(hosts[i]) then
                return nil, format("%s.allow_hosts[%d] must be a non-empty string", where, i)
            end
        end
        if #hosts == 0 then
            hosts = nil
        end
    end
    return {
        allow_hosts = hosts and hostmatch.compile(hosts) or nil,
        -- The supervisor lists a function whose fn.config.json is invalid so that it answers 503, not 404.
        misconfigured = f.config_error ~= nil,
        -- Go: the compiler's message when the handler did not build (shown in dev only).
        build_error = type(f.build_error) == "string" and f.build_error or nil,
        -- Why its dependencies did not install (shown in dev only).
        deps_error = type(f.deps_error) == "string" and f.deps_error or nil,
        version = type(f.version) == "string" and f.version or "default",
        max_concurrency = f.max_concurrency,
        max_queue = f.max_queue,
        queue_timeout_ms = f.queue_timeout_ms,
        overflow_status = f.overflow_status,
        debug_headers = f.debug_headers == true,
        id = id,
        name = f.name,
        runtime = f.runtime,
        sockets = sockets,
        timeout_ms = f.timeout_ms,
        max_body_bytes = f.max_body_bytes,
        dir = f.dir,
        entry = f.entry,
        handler = f.handler,
    }
end

local function check_route(r, where, functions)
    if not is_object(r) then
        return nil, where .. " is not an object"
    end
    local p, err = router.parse_pattern(r.path)
    if not p then
        return nil, format("%s.path %s: %s", where, tostring(r.path), err)
    end
    if type(r.dynamic) ~= "boolean" then
        return nil, where .. ".dynamic must be true or false"
    end
    local has_params = p.nsingle > 0 or p.catch
    if r.dynamic ~= has_params then
        return nil, format("%s: dynamic is %s but the path %s %s parameters", where, tostring(r.dynamic), r.path,
                           has_params and "has" or "has no")
    end
    local methods = r.methods
    if not is_array(methods) or #methods == 0 then
        return nil, where .. ".methods must be a non-empty array"
    end
    for i = 1, #methods do
        local m = methods[i]
        if type(m) ~= "string" or not find(m, "^[A-Z]+$") then
            return nil, format("%s.methods[%d] must be an upper-case method name", where, i - 1)
        end
    end
    local fn = functions[r["function"]]
    if not fn then
        return nil, format("%s.function %s is not in functions[]", where, tostring(r["function"]))
    end
    return { path = r.path, methods = methods, dynamic = r.dynamic, fn = fn }
end

--- Decodes and validates catalog JSON text and builds the index. Returns the index, or nil and a message.
-- index = { generated_at, functions = { [id] = fn }, function_list = { fn … }, routes = { … }, router }
function _M.build(text)
    local c, err = json.decode(text)
    if c == nil then
        return nil, "not valid JSON: " .. tostring(err)
    end
    if not is_object(c) then
        return nil, "the top level must be an object"
    end
    if c.schema_version ~= _M.SCHEMA_VERSION then
        return nil, format("unsupported schema_version %s (this gateway knows %d)", tostring(c.schema_version),
                           _M.SCHEMA_VERSION)
    end
    if c.generated_at ~= nil and type(c.generated_at) ~= "string" then
        return nil, "generated_at must be a string"
    end
    if not is_array(c.functions) then
        return nil, "functions must be an array"
    end
    if not is_array(c.routes) then
        return nil, "routes must be an array"
    end
    local conflicts = c.conflicts
    if conflicts == nil or conflicts == json.null then
        conflicts = {}
    end
    if not is_array(conflicts) then
        return nil, "conflicts must be an array"
    end

    local functions, list = {}, {}
    for i = 1, #c.functions do
        local fn, ferr = check_function(c.functions[i], format("functions[%d]", i - 1))
        if not fn then
            return nil, ferr
        end
        if functions[fn.id] then
            return nil, format("functions[%d].id %s is not unique", i - 1, fn.id)
        end
        functions[fn.id] = fn
        list[i] = fn
    end

    local routes = {}
    for i = 1, #c.routes do
        local r, rerr = check_route(c.routes[i], format("routes[%d]", i - 1), functions)
        if not r then
            return nil, rerr
        end
        routes[i] = r
    end

    for i = 1, #conflicts do
        local p, perr = router.parse_pattern(conflicts[i])
        if not p then
            return nil, format("conflicts[%d] %s: %s", i - 1, tostring(conflicts[i]), perr)
        end
    end

    local rt, rerr = router.new(routes, conflicts)
    if not rt then
        return nil, rerr
    end

    return {
        generated_at = c.generated_at,
        functions = functions,
        function_list = list,
        routes = routes,
        conflicts = conflicts,
        router = rt,
    }
end

--- Reads and validates the catalog file; raises an error naming the file on any problem (nginx then refuses to
-- start). Returns the index.
function _M.load(path)
    if type(path) ~= "string" or path == "" then
        error("catalog path must be a non-empty string", 2)
    end
    local f, oerr = open(path, "rb")
    if not f then
        error(format("fastfn: cannot read catalog %s", tostring(oerr)), 0)
    end
    local text = f:read("*a")
    f:close()
    if not text then
        error(format("fastfn: cannot read catalog %s", path), 0)
    end
    local index, err = _M.build(text)
    if not index then
        error(format("fastfn: invalid catalog %s: %s", path, err), 0)
    end
    return index
end

return _M
