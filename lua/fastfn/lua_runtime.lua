-- In-process Lua functions (runtime "lua"): the handler runs inside the nginx worker, in a restricted environment,
-- instead of behind a unix socket.
--
--   call(fn, event, request_id, dev)  the gateway's stand-in for dispatch.call: same return shape, i.e.
--       envelope, nil, nil, state   or   nil, status, message, state   (state "cold" when this call loaded the file)
--
-- Loading: fn.entry is loaded once per nginx worker (cached by path; a catalog reload restarts the workers, so the
-- cache never outlives the catalog). The chunk and every module it requires get a fresh environment built by
-- sandbox(): safe base functions, copies of string (without dump), table and math, a partial os whose getenv reads
-- the current event's env, cjson.safe as `cjson` and `json`, a `print` that goes to the nginx error log (NOTICE,
-- "[fn:<name> <request id>] …", never into the response), and a `require` limited to cjson and to .lua modules inside
-- fn.dir. No io, ngx, debug, package, coroutine, load*, dofile, collectgarbage. Files are loaded in text mode only.
-- A failed load is cached too: the file is not read again until the workers restart.
--
-- Handler: the chunk's return value if it is a function, else the returned table's handler or main, else the
-- global handler or main the chunk set. It is called as handler(event, event.params); its return value is
-- normalised by normalize() (docs/event.md). Globals and upvalues of the handler live as long as the worker.
--
-- Time bound: user code runs with a count hook (every HOOK_COUNT VM instructions) that raises once timeout_ms has
-- passed; the request gets 504 "runtime timeout" and the worker keeps serving. The sandbox's pcall/xpcall re-raise
-- that error, so a handler cannot swallow it. Not bounded: time spent inside one C function (a pathological
-- string.find pattern, a huge string.rep), and memory.
--
-- Errors (load failure, missing handler, raised error, invalid return value): 500 {"error":"internal error",
-- "request_id": …} plus "detail" (the error message) in dev mode; the traceback goes to the error log at WARN (a
-- handler error is an expected event, not a gateway fault).

local ngx = ngx  -- nil under plain Lua (the spec): clock and log are then injected

local json = require("cjson.safe").new()
if json.encode_escape_forward_slash then   -- OpenResty's cjson: keep "/" readable
    json.encode_escape_forward_slash(false)
end
local cjson_safe = require "cjson.safe"

local loadfile = loadfile
local open = io.open
local type = type
local next = next
local pairs = pairs
local pcall = pcall
local xpcall = xpcall
local error = error
local select = select
local tostring = tostring
local tonumber = tonumber
local rawget = rawget
local setmetatable = setmetatable
local getmetatable = getmetatable
local floor = math.floor
local find = string.find
local sub = string.sub
local gsub = string.gsub
local lower = string.lower
local concat = table.concat
local traceback = debug.traceback
local sethook = debug.sethook
local gethook = debug.gethook

local _M = { _VERSION = "0.1.0" }

local WARN = ngx and ngx.WARN or 5
local NOTICE = ngx and ngx.NOTICE or 6
local WARM, COLD = "warm", "cold"

-- How often (in VM instructions) the time hook looks at the clock: a few tens of microseconds of work.
local HOOK_COUNT = 10000
-- What one call may print before further lines are dropped (the lines go to the error log).
local MAX_PRINT_LINES = 100
local MAX_PRINT_BYTES = 65536

local TIMEOUT = "fastfn: lua handler exceeded its timeout"
local ENVELOPE_KEYS = { "status", "statusCode", "headers", "body", "body_base64", "is_base64", "isBase64Encoded" }
local JSON_TYPE = "application/json"

-- Clock and log: ngx's, or injected by the spec (set_clock, set_log).
local now = ngx and ngx.now or os.clock
local update_time = ngx and ngx.update_time or function() end
local log = ngx and ngx.log or function() end
-- Without ngx (the spec) a base64 body is passed on as such, for response.envelope to decode.
local decode_base64 = ngx and ngx.decode_base64

-- The JIT is turned off for user code: LuaJIT calls count hooks only in interpreted code, so a loop compiled into a
-- trace would never see the time limit. jit.off(f, true) covers f and every function defined inside it.
local jit_off
do
    local ok, jit = pcall(require, "jit")
    if ok and type(jit) == "table" and jit.off then
        local off = jit.off
        jit_off = function(f)
            off(f, true)
        end
    else
        jit_off = function() end
    end
end

-- realpath(3) through the FFI, to keep symlinks from leading `require` out of the function's folder. Without the FFI
-- (plain Lua) only the lexical check applies (module names cannot contain "..").
local realpath
do
    local ok, ffi = pcall(require, "ffi")
    if ok then
        pcall(ffi.cdef, "char *realpath(const char *path, char *resolved_path);")
        local C = ffi.C
        local buf = ffi.new("char[?]", 4097)
        local ffi_string = ffi.string
        realpath = function(path)
            if C.realpath(path, buf) == nil then
                return nil
            end
            return ffi_string(buf)
        end
    end
end

---------------------------------------------------------------------------------------------------------------------
-- Per-call state. Calls never overlap in a worker: user code cannot yield (the sandbox has no ngx, no coroutine).

local deadline = 0
local timed_out = false
local current_env          -- the event's env table during a call, for os.getenv
local printed, nprinted, printed_bytes, dropped = {}, 0, 0, 0
local print_on = true

-- The count hook. LuaJIT's hooks are global to the VM, so it is installed only around user code and removed after.
local function hook()
    update_time()
    if now() >= deadline then
        timed_out = true
        error(TIMEOUT, 0)
    end
end

-- The xpcall message handler: the message (for "detail") and the traceback (for the log). A non-string error value
-- is not tostring'd: that could run a __tostring metamethod outside the time bound.
local function on_error(err)
    if timed_out then
        return TIMEOUT
    end
    local t = type(err)
    if t == "number" then
        err = tostring(err)
    elseif t ~= "string" then
        err = "(error object is a " .. t .. " value)"
    end
    return { message = err, traceback = traceback(err, 2) }
end

-- Runs f(...) under the time hook. Returns true, result; or false, error (on_error's table, or a string), timed out.
local function bounded(timeout_ms, f, a, b)
    timed_out = false
    update_time()
    deadline = now() + timeout_ms / 1000
    local ph, pm, pc = gethook()
    sethook(hook, "", HOOK_COUNT)
    local ok, res = xpcall(f, on_error, a, b)
    if ph then
        sethook(ph, pm, pc)
    else
        sethook()
    end
    local t = timed_out
    timed_out = false
    return ok, res, t
end

---------------------------------------------------------------------------------------------------------------------
-- The sandbox.

local function copy(t, except)
    local c = {}
    for k, v in pairs(t) do
        if k ~= except then
            c[k] = v
        end
    end
    return c
end

-- pcall/xpcall for user code: once the time is up, the error is raised again whatever the user's code caught.
local function rethrow_timeout(ok, ...)
    if not ok and timed_out then
        error(TIMEOUT, 0)
    end
    return ok, ...
end

local function sandbox_pcall(f, ...)
    return rethrow_timeout(pcall(f, ...))
end

local function sandbox_xpcall(f, msgh, ...)
    return rethrow_timeout(xpcall(f, msgh, ...))
end

-- Metatables the sandbox may hand back: only those user code set itself. Others are shared with the gateway (the
-- string metatable, whose __index is the real string table; ngx's request-headers metatable) and must not be
-- reachable, let alone mutable, from a handler.
local own_mt = setmetatable({}, { __mode = "k" })

local function sandbox_setmetatable(t, mt)
    local r = setmetatable(t, mt)
    if type(mt) == "table" then
        own_mt[mt] = true
    end
    return r
end

local function sandbox_getmetatable(v)
    if type(v) ~= "table" then
        return nil
    end
    local mt = getmetatable(v)
    if type(mt) == "table" and not own_mt[mt] then
        return nil
    end
    return mt
end

local function sandbox_getenv(name)
    local env = current_env
    if type(name) ~= "string" or type(env) ~= "table" then
        return nil
    end
    local v = env[name]
    if type(v) == "string" then
        return v
    elseif type(v) == "number" then
        return tostring(v)
    end
    return nil
end

local function sandbox_print(...)
    if not print_on then
        return
    end
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
        parts[i] = tostring((select(i, ...)))
    end
    local line = concat(parts, "\t", 1, n)
    if nprinted >= MAX_PRINT_LINES or printed_bytes + #line > MAX_PRINT_BYTES then
        dropped = dropped + 1
        return
    end
    nprinted = nprinted + 1
    printed[nprinted] = line
    printed_bytes = printed_bytes + #line
end

-- Writes what the call printed to the error log and empties the buffer.
local function flush_prints(fn, request_id)
    if nprinted == 0 and dropped == 0 then
        return
    end
    local prefix = "[fn:" .. tostring(fn.name) .. " " .. tostring(request_id) .. "] "
    for i = 1, nprinted do
        log(NOTICE, prefix, printed[i])
        printed[i] = nil
    end
    if dropped > 0 then
        log(NOTICE, prefix, "(", dropped, " more print calls dropped)")
    end
    nprinted, printed_bytes, dropped = 0, 0, 0
end

-- "a.b", "a/b" -> "a/b"; nil for anything else (absolute, "..", ".", empty segments, odd characters).
local function module_relpath(name)
    if type(name) ~= "string" or name == "" or #name > 255 then
        return nil
    end
    local rel = gsub(name, "%.", "/")
    if find(rel, "^/") or find(rel, "/$") or find(rel, "//", 1, true) or find(rel, "[^%w_%-/]") then
        return nil
    end
    return rel
end
_M.module_relpath = module_relpath

local function readable(path)
    local f = open(path, "rb")
    if not f then
        return false
    end
    f:close()
    return true
end

-- The module file for a name, inside dir (symlinks resolved when the FFI is there); or nil and why not.
local function resolve_module(dir, real_dir, name)
    local rel = module_relpath(name)
    if not rel then
        return nil, "module name " .. tostring(name) .. " is not allowed (letters, digits, _ and - separated by . or /)"
    end
    local candidates = { dir .. "/" .. rel .. ".lua", dir .. "/" .. rel .. "/init.lua" }
    for i = 1, 2 do
        local path = candidates[i]
        if readable(path) then
            if realpath then
                local real = realpath(path)
                if not real_dir or not real or sub(real, 1, #real_dir + 1) ~= real_dir .. "/" then
                    return nil, "module " .. name .. " resolves outside the function's folder"
                end
            end
            return path
        end
    end
    return nil, "module " .. name .. " not found in the function's folder"
end

local build_env

-- require() for one function: cjson, or a .lua module inside box.dir, run once in its own sandbox and cached (failures
-- too, so a missing module costs no file access per request).
local function make_require(box)
    return function(name)
        if name == "cjson" or name == "cjson.safe" then
            return box.json
        end
        local rel = module_relpath(name) or name
        local m = box.modules[rel]
        if m == nil then
            local path, err = resolve_module(box.dir, box.real_dir, name)
            local chunk
            if path then
                chunk, err = loadfile(path, "t", build_env(box))
            end
            if not chunk then
                m = { err = err }
                box.modules[rel] = m
            else
                jit_off(chunk)
                box.modules[rel] = { err = "loop while loading module " .. name }
                local ok, res = pcall(chunk, name)
                if timed_out then
                    box.modules[rel] = nil
                    error(TIMEOUT, 0)
                end
                if ok then
                    if res == nil then
                        res = true
                    end
                    m = { value = res }
                else
                    m = { err = "error loading module " .. name .. ": " .. tostring(res) }
                end
                box.modules[rel] = m
            end
        end
        if m.err then
            error(m.err, 2)
        end
        return m.value
    end
end

-- A fresh global table for one chunk of the function `box` (its entry file or one of its modules).
build_env = function(box)
    local env = {
        _VERSION = _VERSION,
        assert = assert,
        error = error,
        ipairs = ipairs,
        next = next,
        pairs = pairs,
        pcall = sandbox_pcall,
        xpcall = sandbox_xpcall,
        select = select,
        tonumber = tonumber,
        tostring = tostring,
        type = type,
        unpack = rawget(_G, "unpack") or rawget(table, "unpack"),
        rawequal = rawequal,
        rawget = rawget,
        rawset = rawset,
        rawlen = rawget(_G, "rawlen"),
        setmetatable = sandbox_setmetatable,
        getmetatable = sandbox_getmetatable,
        string = copy(string, "dump"),
        table = copy(table),
        math = copy(math),
        os = {
            time = os.time,
            date = os.date,
            clock = os.clock,
            difftime = os.difftime,
            getenv = sandbox_getenv,
        },
        cjson = box.json,
        json = box.json,
        print = sandbox_print,
        require = box.require,
    }
    env._G = env
    return env
end

--- A sandbox for the function whose folder is dir: { dir, json, modules, require, env = <globals for the entry> }.
function _M.sandbox(dir)
    if type(dir) ~= "string" or dir == "" then
        error("lua_runtime.sandbox: dir must be a non-empty string", 2)
    end
    dir = gsub(dir, "/+$", "")
    local box = {
        dir = dir,
        real_dir = realpath and realpath(dir ~= "" and dir or "/"),
        modules = {},
        -- The function's own cjson.safe instance: a handler changing its settings affects nobody else.
        json = cjson_safe.new(),
    }
    box.require = make_require(box)
    box.env = build_env(box)
    return box
end

---------------------------------------------------------------------------------------------------------------------
-- The handler's return value -> the gateway's envelope.

local function absent(v)
    return v == nil or v == json.null
end

local function has_envelope_key(t)
    for i = 1, #ENVELOPE_KEYS do
        if rawget(t, ENVELOPE_KEYS[i]) ~= nil then
            return true
        end
    end
    return false
end

local function header_value(v)
    local t = type(v)
    if t == "string" then
        return v
    elseif t == "number" then
        return tostring(v)
    end
    return nil
end

-- Returns a headers table of strings (or arrays of strings), or nil when there are none, and whether it sets a
-- Content-Type; or nil, nil and an error.
local function check_headers(h)
    if absent(h) then
        return nil, false
    end
    if type(h) ~= "table" then
        return nil, nil, "headers must be a table"
    end
    local out, has_type = {}, false
    for k, v in next, h do
        if type(k) ~= "string" then
            return nil, nil, "header names must be strings"
        end
        local s = header_value(v)
        if s == nil and type(v) == "table" then
            -- A repeated header (Set-Cookie): an array of strings or numbers.
            local n = 0
            for _ in next, v do
                n = n + 1
            end
            local list = {}
            for i = 1, n do
                list[i] = header_value(rawget(v, i))
                if list[i] == nil then
                    return nil, nil, "header " .. k .. " must be a string, a number or an array of them"
                end
            end
            s = list
        end
        if s == nil then
            return nil, nil, "header " .. k .. " must be a string, a number or an array of them"
        end
        if lower(k) == "content-type" then
            has_type = true
        end
        out[k] = s
    end
    return out, has_type
end

local function flag(t, key)
    local v = rawget(t, key)
    if absent(v) then
        return nil
    end
    if type(v) ~= "boolean" then
        return nil, key .. " must be true or false"
    end
    return v
end

--- What a handler returned -> { status, headers?, body } (the shape response.envelope takes; under plain Lua a base64
-- body stays { status, headers?, is_base64, body_base64 }); or nil and the reason it is invalid.
--   nil                                 -> 200, empty body, no Content-Type
--   a table without envelope keys, or any other value -> 200 application/json of the value
--   an envelope {status|statusCode, headers, body | body_base64 (+ is_base64|isBase64Encoded)}: status an integer
--   100..599 (tonumber'd, default 200); header values strings or numbers (or arrays of them); a table body is
--   JSON-encoded and gets Content-Type: application/json unless one is set; a number or boolean body is tostring'd.
function _M.normalize(v)
    if v == nil then
        return { status = 200, body = "" }
    end
    if type(v) ~= "table" or not has_envelope_key(v) then
        local text, err = json.encode(v)
        if not text then
            return nil, "cannot encode the return value as JSON: " .. tostring(err)
        end
        return { status = 200, headers = { ["Content-Type"] = JSON_TYPE }, body = text }
    end

    local status = rawget(v, "status")
    if absent(status) then
        status = rawget(v, "statusCode")
    end
    if absent(status) then
        status = 200
    else
        local n = tonumber(status)
        if not n or floor(n) ~= n or n < 100 or n > 599 then
            return nil, "status must be an integer in 100..599, got " .. (type(status) == "string" and status
                or type(status) == "number" and tostring(status) or "a " .. type(status))
        end
        status = n
    end

    local headers, has_type, err = check_headers(rawget(v, "headers"))
    if err then
        return nil, err
    end

    local is_b64
    is_b64, err = flag(v, "is_base64")
    if err then
        return nil, err
    end
    local aws_b64
    aws_b64, err = flag(v, "isBase64Encoded")
    if err then
        return nil, err
    end
    local b64 = rawget(v, "body_base64")
    if not absent(b64) or is_b64 or aws_b64 then
        if absent(b64) and aws_b64 then
            b64 = rawget(v, "body")   -- isBase64Encoded: the base64 text is in body
        end
        if type(b64) ~= "string" then
            return nil, "a base64 response needs body_base64 (or body with isBase64Encoded) as a string"
        end
        if not decode_base64 then
            return { status = status, headers = headers, is_base64 = true, body_base64 = b64 }
        end
        -- Decoded here, so that bad base64 is the handler's error (500 with the reason), not 502 from the gateway.
        local bytes = decode_base64(b64)
        if not bytes then
            return nil, "body_base64 is not valid base64"
        end
        return { status = status, headers = headers, body = bytes }
    end

    local body = rawget(v, "body")
    local t = type(body)
    if absent(body) then
        body = ""
    elseif t == "table" then
        local text
        text, err = json.encode(body)
        if not text then
            return nil, "cannot encode the body as JSON: " .. tostring(err)
        end
        body = text
        if not has_type then
            headers = headers or {}
            headers["Content-Type"] = JSON_TYPE
        end
    elseif t == "number" or t == "boolean" then
        body = tostring(body)
    elseif t ~= "string" then
        return nil, "body must be a string, a table, a number or a boolean, got a " .. t
    end
    return { status = status, headers = headers, body = body }
end

---------------------------------------------------------------------------------------------------------------------
-- Loading and calling.

-- entry path -> { handler = f } or { err = message, traceback = …, timeout = bool }
local loaded = {}

local function find_handler(ret, env)
    if type(ret) == "function" then
        return ret
    end
    if type(ret) == "table" then
        local h = ret.handler
        if type(h) == "function" then
            return h
        end
        h = ret.main
        if type(h) == "function" then
            return h
        end
    end
    local h = rawget(env, "handler")
    if type(h) == "function" then
        return h
    end
    h = rawget(env, "main")
    if type(h) == "function" then
        return h
    end
    error("lua entrypoint must define handler(event) or main(event)", 0)
end

local function run_chunk(chunk, env)
    return find_handler(chunk(), env)
end

local function failure(res)
    if type(res) == "table" then
        return res.message, res.traceback
    end
    return tostring(res), tostring(res)
end

-- Loads fn.entry in a new sandbox and runs it (the run counts against fn.timeout_ms). Returns the cache entry.
local function load_entry(fn)
    local entry = fn.entry
    if type(entry) ~= "string" or entry == "" then
        return { err = "the catalog gives no entry file for this function" }
    end
    local dir = fn.dir
    if type(dir) ~= "string" or dir == "" then
        dir = entry:match("^(.*)/[^/]*$") or "."
    end
    local box = _M.sandbox(dir)
    local chunk, err = loadfile(entry, "t", box.env)
    if not chunk then
        return { err = "cannot load " .. entry .. ": " .. tostring(err) }
    end
    jit_off(chunk)
    local ok, res, to = bounded(fn.timeout_ms, run_chunk, chunk, box.env)
    if to then
        return { err = "loading " .. entry .. " exceeded the timeout", timeout = true }
    end
    if not ok then
        local msg, tb = failure(res)
        return { err = msg, traceback = tb }
    end
    jit_off(res)
    return { handler = res }
end

local function invoke(handler, event)
    local env, err = _M.normalize(handler(event, event.params))
    if not env then
        error(err, 0)
    end
    return env
end

local function internal_error(request_id, dev, detail)
    local body = { error = "internal error", request_id = request_id }
    if dev then
        body.detail = detail
    end
    return {
        status = 500,
        headers = { ["Content-Type"] = JSON_TYPE },
        body = json.encode(body) or '{"error":"internal error"}',
    }
end

local function decide_print()
    if not ngx then
        return true
    end
    local ok, errlog = pcall(require, "ngx.errlog")
    if not ok then
        return true
    end
    local ok2, level = pcall(errlog.get_sys_filter_level)
    return not ok2 or type(level) ~= "number" or level >= NOTICE
end

--- Runs fn's handler for event (built by fastfn.event; the handler gets its own copies of event.env and
-- event.context.gateway, so changing them cannot leak into other requests). dev: whether errors carry "detail".
-- Returns envelope, nil, nil, state; or nil, status, message, state (504 "runtime timeout").
function _M.call(fn, event, request_id, dev)
    local entry = loaded[fn.entry or ""]
    local state = WARM
    if not entry then
        if next(loaded) == nil then
            print_on = decide_print()
        end
        state = COLD
        current_env = fn.env
        entry = load_entry(fn)
        current_env = nil
        flush_prints(fn, request_id)
        loaded[fn.entry or ""] = entry
        if entry.err then
            log(WARN, "fastfn: lua function ", fn.name, " (", fn.id, ") failed to load, request ", request_id, ": ",
                entry.traceback or entry.err)
        end
    end
    if entry.timeout then
        return nil, 504, "runtime timeout", COLD
    end
    if entry.err then
        return internal_error(request_id, dev, entry.err), nil, nil, COLD
    end

    local env = event.env
    if type(env) == "table" then
        event.env = copy(env)
    end
    local ctx = event.context
    if type(ctx) == "table" and type(ctx.gateway) == "table" then
        ctx.gateway = copy(ctx.gateway)
    end
    current_env = event.env
    local ok, res, to = bounded(fn.timeout_ms, invoke, entry.handler, event)
    current_env = nil
    flush_prints(fn, request_id)
    if to then
        log(WARN, "fastfn: lua function ", fn.name, " (", fn.id, ") exceeded its timeout of ", fn.timeout_ms,
            " ms, request ", request_id)
        return nil, 504, "runtime timeout", state
    end
    if not ok then
        local msg, tb = failure(res)
        log(WARN, "fastfn: lua function ", fn.name, " (", fn.id, ") failed, request ", request_id, ": ", tb)
        return internal_error(request_id, dev, msg), nil, nil, state
    end
    return res, nil, nil, state
end

--- Forgets every loaded handler (the spec; nginx gets a fresh cache with each new worker).
function _M.reset()
    loaded = {}
end

--- For the spec: a fake clock (now() in seconds; update() called by the hook before now()).
function _M.set_clock(now_fn, update_fn)
    now = now_fn
    update_time = update_fn or function() end
end

--- For the spec: where log lines go (log(level, ...)).
function _M.set_log(log_fn)
    log = log_fn
end

_M.TIMEOUT = TIMEOUT
_M.HOOK_COUNT = HOOK_COUNT

return _M
