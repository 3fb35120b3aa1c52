-- busted lua/spec   (from the repository root; runs under plain Lua 5.1+ or LuaJIT, no nginx)
-- fastfn.lua_runtime: the sandbox, require's confinement, the handler lookup, the normalisation of return values and
-- the time bound (with a fake clock, and once with the real one). The nginx glue is exercised against real nginx.
local here = debug.getinfo(1, "S").source:match("^@(.*)spec/[^/]*$") or "lua/"
package.path = here .. "?.lua;" .. package.path

local json = require "cjson.safe"
local rt = require "fastfn.lua_runtime"

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function mkdir(path)
    assert(os.execute("mkdir -p " .. shell_quote(path)))
end

local function write(path, text)
    mkdir(path:match("^(.*)/[^/]*$"))
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

local root
local counter = 0

-- A function folder with the given files ({ ["hello.lua"] = "…" }); returns the catalog-like fn table.
local function fn_with(files, entry, over)
    counter = counter + 1
    local dir = root .. "/fn" .. counter
    mkdir(dir)
    for name, text in pairs(files) do
        write(dir .. "/" .. name, text)
    end
    local fn = {
        id = "0123456789abcdef", name = "f" .. counter, runtime = "lua", dir = dir,
        entry = dir .. "/" .. (entry or "handler.lua"), timeout_ms = 1000, env = { GREETING = "hi", N = "42" },
    }
    for k, v in pairs(over or {}) do
        fn[k] = v
    end
    return fn
end

local function new_event(over)
    local ev = {
        id = "req-1", method = "GET", path = "/x", params = { id = "7" }, query = {}, headers = {},
        env = nil, context = { request_id = "req-1", gateway = { worker_pid = 1 } },
    }
    for k, v in pairs(over or {}) do
        ev[k] = v
    end
    return ev
end

-- Calls fn once; returns the envelope (body decoded when JSON) or the error status/message, and the state.
local function call(fn, ev, dev)
    local env, status, msg, state = rt.call(fn, ev or new_event({ env = fn.env }), "req-1", dev)
    return env, status, msg, state
end

local function decoded(env)
    return json.decode(env.body)
end

local logs
local function capture_log(level, ...)
    logs[#logs + 1] = { level = level, text = table.concat({ ... }) }
end

setup(function()
    local tmp = os.tmpname()
    os.remove(tmp)
    root = tmp .. "-lua-runtime-spec"
    mkdir(root)
end)

teardown(function()
    rt.set_clock(os.clock)
    os.execute("rm -rf " .. shell_quote(root))
end)

before_each(function()
    logs = {}
    rt.reset()
    rt.set_log(capture_log)
    rt.set_clock(os.clock)
end)

describe("lua_runtime sandbox", function()
    it("offers only the safe globals", function()
        local env = rt.sandbox(root).env
        for _, name in ipairs({ "io", "debug", "ngx", "load", "loadstring", "dofile", "loadfile", "collectgarbage",
            "package", "coroutine", "setfenv", "getfenv", "module", "newproxy", "jit", "ffi", "arg" }) do
            assert.is_nil(env[name], name)
        end
        for _, name in ipairs({ "execute", "remove", "rename", "exit", "tmpname", "setlocale" }) do
            assert.is_nil(env.os[name], "os." .. name)
        end
        assert.is_nil(env.string.dump)
        for _, name in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
            "tostring", "type", "unpack", "xpcall", "rawequal", "rawget", "rawset", "setmetatable", "getmetatable",
            "print", "require" }) do
            assert.are.equal("function", type(env[name]), name)
        end
        for _, name in ipairs({ "time", "date", "clock", "difftime", "getenv" }) do
            assert.are.equal("function", type(env.os[name]), "os." .. name)
        end
        assert.are.equal(env, env._G)
        assert.are.equal(env.cjson, env.json)
        assert.are.equal("function", type(env.cjson.encode))
        assert.are.equal("function", type(env.string.format))
        assert.are.equal("function", type(env.table.concat))
        assert.are.equal("function", type(env.math.floor))
    end)

    it("gives copies of the libraries, so a handler cannot change the gateway's", function()
        local env = rt.sandbox(root).env
        assert.are_not.equal(string, env.string)
        assert.are_not.equal(math, env.math)
        assert.are_not.equal(table, env.table)
        env.math.floor = nil
        env.string.format = nil
        assert.are.equal("function", type(math.floor))
        assert.are.equal("function", type(string.format))
        -- Each function has its own cjson instance.
        assert.are_not.equal(require("cjson.safe"), env.cjson)
        assert.are_not.equal(rt.sandbox(root).env.cjson, env.cjson)
    end)

    it("hides metatables it did not set (the string metatable, ngx's header tables)", function()
        local env = rt.sandbox(root).env
        assert.is_nil(env.getmetatable(""))
        assert.is_nil(env.getmetatable(1))
        local foreign = setmetatable({}, { __index = function() return "x" end })
        assert.is_nil(env.getmetatable(foreign))
        local mt = {}
        local t = env.setmetatable({}, mt)
        assert.are.equal(mt, env.getmetatable(t))
        assert.is_nil(env.getmetatable({}))
    end)

    it("runs a loaded file without io, os.execute or ngx", function()
        local fn = fn_with({ ["handler.lua"] = [[
            return function()
                return { io = type(io), exec = type(os.execute), ngx = type(ngx), dbg = type(debug),
                         load = type(load), ls = type(loadstring), cg = type(collectgarbage), pkg = type(package),
                         dump = type(string.dump), strdump = type(("").dump), smt = type(getmetatable("")) }
            end
        ]] })
        local env = call(fn)
        assert.are.equal(200, env.status)
        local got = decoded(env)
        for k, v in pairs(got) do
            if k ~= "strdump" then
                assert.are.equal("nil", v, k)
            end
        end
    end)

    it("refuses binary chunks", function()
        local f = assert(loadstring or load)("return function() return 1 end")
        local fn = fn_with({ ["handler.lua"] = string.dump(f) })
        local env = call(fn, nil, true)
        assert.are.equal(500, env.status)
        assert.matches("handler.lua: .*mode", decoded(env).detail)
    end)

    it("os.getenv reads the event's env only", function()
        local fn = fn_with({ ["handler.lua"] = [[
            local at_load = os.getenv("GREETING")
            return function(event)
                event.env.GREETING = "changed"
                return { load = at_load, g = os.getenv("GREETING"), n = os.getenv("N"), home = os.getenv("HOME"),
                         path = os.getenv("PATH"), bad = os.getenv(1) }
            end
        ]] })
        local env = call(fn)
        assert.are.same({ load = "hi", g = "changed", n = "42" }, decoded(env))
        -- The handler changed its copy: the function's env and the next event are untouched.
        assert.are.equal("hi", fn.env.GREETING)
        assert.are.same({ load = "hi", g = "changed", n = "42" }, decoded(call(fn)))
    end)

    it("gives the handler its own context.gateway", function()
        local fn = fn_with({ ["handler.lua"] = [[
            return function(event) event.context.gateway.worker_pid = 666; return {} end
        ]] })
        local shared = { worker_pid = 1 }
        call(fn, new_event({ context = { gateway = shared } }))
        assert.are.equal(1, shared.worker_pid)
    end)
end)

describe("lua_runtime require", function()
    it("loads modules from the function's folder, once, in a sandbox", function()
        local fn = fn_with({
            ["handler.lua"] = [[
                local a = require "util"
                local b = require "lib.deep"
                local c = require "lib/deep"
                local p = require "pkg"
                local j = require "cjson"
                local s = require "cjson.safe"
                return function()
                    local again = require "util"
                    return { a = a.name, b = b.name, same = (b == c) and (again == a), p = p.name,
                             json = (j == s and j == cjson and j == json), loads = a.loads(),
                             mod_io = a.io }
                end
            ]],
            ["util.lua"] = [[
                local loads = 0
                loads = loads + 1
                return { name = "util", loads = function() return loads end, io = type(io) }
            ]],
            ["lib/deep.lua"] = "return { name = 'deep' }",
            ["pkg/init.lua"] = "return { name = 'pkg' }",
        })
        local env = call(fn)
        assert.are.same({ a = "util", b = "deep", same = true, p = "pkg", json = true, loads = 1, mod_io = "nil" },
            decoded(env))
        assert.are.same({ a = "util", b = "deep", same = true, p = "pkg", json = true, loads = 1, mod_io = "nil" },
            decoded(call(fn)))
    end)

    it("refuses names that leave the folder or are not plain names", function()
        write(root .. "/secret.lua", "return { leaked = true }")
        local fn = fn_with({ ["handler.lua"] = [[
            return function(event)
                local ok, err = pcall(require, event.query.name)
                return { ok = ok, err = tostring(err) }
            end
        ]] })
        for _, name in ipairs({ "../secret", "..secret", "..", ".", "/etc/passwd", "./util", "a//b", "a\\b",
            "lib.", ".lib", "os", "io", "ffi", "string", "resty.core", "fastfn.gateway" }) do
            local got = decoded(call(fn, new_event({ query = { name = name } })))
            assert.is_false(got.ok, name)
        end
        assert.matches("not allowed", decoded(call(fn, new_event({ query = { name = "../secret" } }))).err)
        assert.matches("not found", decoded(call(fn, new_event({ query = { name = "fastfn.gateway" } }))).err)
        assert.is_nil(rt.module_relpath("../secret"))
        assert.is_nil(rt.module_relpath("/abs"))
        assert.are.equal("a/b", rt.module_relpath("a.b"))
        assert.are.equal("a/b-c_d", rt.module_relpath("a/b-c_d"))
    end)

    it("refuses a symlink that leads out of the folder (with the FFI)", function()
        if not pcall(require, "ffi") then
            pending("needs LuaJIT's FFI")
            return
        end
        write(root .. "/outside.lua", "return { leaked = true }")
        local fn = fn_with({ ["handler.lua"] = [[
            return function()
                local ok, err = pcall(require, "link")
                return { ok = ok, err = tostring(err) }
            end
        ]] })
        assert(os.execute("ln -s " .. shell_quote(root .. "/outside.lua") .. " " .. shell_quote(fn.dir .. "/link.lua")))
        local got = decoded(call(fn))
        assert.is_false(got.ok)
        assert.matches("outside", got.err)
    end)

    it("reports a module's error to the handler and caches it", function()
        local fn = fn_with({
            ["handler.lua"] = [[
                return function()
                    local ok1, e1 = pcall(require, "broken")
                    local ok2, e2 = pcall(require, "broken")
                    return { ok1, tostring(e1), ok2, tostring(e2) }
                end
            ]],
            ["broken.lua"] = "error('module says no')",
        })
        local got = decoded(call(fn))
        assert.is_false(got[1])
        assert.matches("module says no", got[2])
        assert.is_false(got[3])
        assert.matches("module says no", got[4])
    end)
end)

describe("lua_runtime handler lookup", function()
    local cases = {
        { "a returned function", "return function() return { which = 'returned' } end", "returned" },
        { "a returned table's handler", "return { handler = function() return { which = 'table.handler' } end, "
            .. "main = function() return { which = 'table.main' } end }", "table.handler" },
        { "a returned table's main", "return { main = function() return { which = 'table.main' } end }",
            "table.main" },
        { "the global handler", "function handler() return { which = 'handler' } end "
            .. "function main() return { which = 'main' } end", "handler" },
        { "the global main", "function main() return { which = 'main' } end", "main" },
        { "a returned function before globals", "function handler() return { which = 'handler' } end "
            .. "return function() return { which = 'returned' } end", "returned" },
        { "globals when the returned table has neither", "function main() return { which = 'main' } end "
            .. "return { other = 1 }", "main" },
    }
    for _, c in ipairs(cases) do
        it("uses " .. c[1], function()
            local env = call(fn_with({ ["handler.lua"] = c[2] }))
            assert.are.same({ which = c[3] }, decoded(env))
        end)
    end

    it("calls handler(event, event.params)", function()
        local fn = fn_with({ ["handler.lua"] = [[
            return function(event, params) return { same = event.params == params, id = params.id } end
        ]] })
        assert.are.same({ same = true, id = "7" }, decoded(call(fn)))
    end)

    it("answers 500 without a handler, with the reason in dev only", function()
        local fn = fn_with({ ["handler.lua"] = "local x = 1" })
        local env, _, _, state = call(fn, nil, true)
        assert.are.equal("cold", state)
        assert.are.equal(500, env.status)
        assert.are.equal("application/json", env.headers["Content-Type"])
        assert.are.same({ error = "internal error", request_id = "req-1",
            detail = "lua entrypoint must define handler(event) or main(event)" }, decoded(env))
        env = call(fn, nil, false)
        assert.are.same({ error = "internal error", request_id = "req-1" }, decoded(env))
    end)

    it("loads once per worker: cold, then warm; a failed load is not retried", function()
        local fn = fn_with({ ["handler.lua"] = "local n = 0 return function() n = n + 1 return { n = n } end" })
        local env, _, _, state = call(fn)
        assert.are.same({ n = 1 }, decoded(env))
        assert.are.equal("cold", state)
        env, _, _, state = call(fn)
        assert.are.same({ n = 2 }, decoded(env))
        assert.are.equal("warm", state)

        local broken = fn_with({ ["handler.lua"] = "return function( end" })
        env = call(broken, nil, true)
        assert.are.equal(500, env.status)
        assert.matches("handler.lua", decoded(env).detail)
        write(broken.entry, "return function() return {} end")
        env, _, _, state = call(broken, nil, true)
        assert.are.equal(500, env.status)
        assert.are.equal("cold", state)
        rt.reset()
        assert.are.equal(200, call(broken).status)
    end)

    it("answers 500 for a missing file", function()
        local fn = fn_with({}, "nope.lua")
        local env = call(fn, nil, true)
        assert.are.equal(500, env.status)
        assert.matches("nope.lua", decoded(env).detail)
    end)

    it("turns a raised error into 500 and logs the traceback at WARN", function()
        local fn = fn_with({ ["handler.lua"] = [[
            return function(event)
                if event.query.kind == "table" then error({ code = 1 }) end
                error("boom")
            end
        ]] })
        local env = call(fn, nil, true)
        assert.are.equal(500, env.status)
        local body = decoded(env)
        assert.are.equal("internal error", body.error)
        assert.are.equal("req-1", body.request_id)
        assert.matches("handler.lua:3: boom", body.detail)
        assert.are.equal(1, #logs)
        assert.are.equal(5, logs[1].level)
        assert.matches("stack traceback", logs[1].text)
        assert.matches("req%-1", logs[1].text)

        env = call(fn, new_event({ query = { kind = "table" } }), true)
        assert.are.equal("(error object is a table value)", decoded(env).detail)
    end)

    it("sends print() to the log at NOTICE, never into the response", function()
        local fn = fn_with({ ["handler.lua"] = [[
            print("loading")
            return function() print("a", 1, nil, true) return { ok = true } end
        ]] })
        local env = call(fn)
        assert.are.same({ ok = true }, decoded(env))
        assert.are.equal(2, #logs)
        assert.are.equal(6, logs[1].level)
        assert.are.equal("[fn:" .. fn.name .. " req-1] loading", logs[1].text)
        assert.are.equal("[fn:" .. fn.name .. " req-1] a\t1\tnil\ttrue", logs[2].text)
    end)

    it("caps what one call may print", function()
        local fn = fn_with({ ["handler.lua"] = "return function() for i = 1, 500 do print(i) end end" })
        call(fn)
        assert.are.equal(101, #logs)
        assert.matches("400 more print calls dropped", logs[101].text)
    end)
end)

describe("lua_runtime normalize", function()
    local norm = rt.normalize

    it("answers nil with an empty 200", function()
        assert.are.same({ status = 200, body = "" }, norm(nil))
    end)

    it("answers plain values and tables without envelope keys with 200 JSON", function()
        for _, c in ipairs({
            { { a = 1 }, '{"a":1}' }, { { 1, 2 }, "[1,2]" }, { "hi", '"hi"' }, { 5, "5" }, { true, "true" },
            { {}, "{}" }, { { proxy = 1 }, '{"proxy":1}' },
        }) do
            local env = norm(c[1])
            assert.are.equal(200, env.status)
            assert.are.same({ ["Content-Type"] = "application/json" }, env.headers)
            assert.are.equal(c[2], env.body)
        end
    end)

    it("refuses values JSON cannot hold", function()
        assert.is_nil(norm(function() end))
        assert.is_nil(norm({ f = function() end }))
        local cyclic = {}
        cyclic.self = cyclic
        local env, err = norm(cyclic)
        assert.is_nil(env)
        assert.matches("JSON", err)
    end)

    it("passes envelopes through", function()
        assert.are.same({ status = 201, headers = { ["X-A"] = "1", ["Content-Type"] = "text/plain" }, body = "ok" },
            norm({ status = 201, headers = { ["X-A"] = 1, ["Content-Type"] = "text/plain" }, body = "ok" }))
        assert.are.same({ status = 204, body = "" }, norm({ statusCode = "204" }))
        assert.are.same({ status = 200, body = "" }, norm({ body = json.null }))
        assert.are.same({ status = 200, body = "12" }, norm({ body = 12 }))
        assert.are.same({ status = 200, body = "false" }, norm({ body = false }))
        assert.are.same({ status = 200, headers = { ["Set-Cookie"] = { "a=1", "b=2" } }, body = "" },
            norm({ headers = { ["Set-Cookie"] = { "a=1", "b=2" } } }))
    end)

    it("encodes a table body as JSON with a default content type", function()
        assert.are.same({ status = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"x":1}' },
            norm({ body = { x = 1 } }))
        assert.are.same({ status = 200, headers = { ["content-type"] = "application/vnd+json" }, body = "[1]" },
            norm({ headers = { ["content-type"] = "application/vnd+json" }, body = { 1 } }))
    end)

    it("handles base64 bodies", function()
        assert.are.same({ status = 200, is_base64 = true, body_base64 = "aGk=" },
            norm({ is_base64 = true, body_base64 = "aGk=" }))
        assert.are.same({ status = 200, is_base64 = true, body_base64 = "aGk=" }, norm({ body_base64 = "aGk=" }))
        assert.are.same({ status = 200, is_base64 = true, body_base64 = "aGk=" },
            norm({ isBase64Encoded = true, body = "aGk=" }))
        assert.is_nil(norm({ is_base64 = true }))
        assert.is_nil(norm({ is_base64 = "yes", body = "x" }))
        assert.is_nil(norm({ isBase64Encoded = 1, body = "x" }))
    end)

    it("refuses invalid statuses and headers", function()
        for _, s in ipairs({ 99, 600, 200.5, "abc", {}, true, 0 / 0, math.huge }) do
            local env, err = norm({ status = s })
            assert.is_nil(env, tostring(s))
            assert.matches("status", err)
        end
        for _, h in ipairs({ "x", 1, { [1] = "a" }, { A = true }, { A = {} and { true } }, { A = { x = "1" } },
            { A = function() end } }) do
            assert.is_nil(norm({ headers = h }))
        end
        assert.is_nil(norm({ body = function() end }))
    end)

    it("is used for what handlers return, errors becoming 500", function()
        local fn = fn_with({ ["handler.lua"] = [[
            return function(event)
                if event.query.bad then return { status = 700 } end
                return { status = 202, headers = { ["X-N"] = 3 }, body = { ok = true } }
            end
        ]] })
        local env = call(fn)
        assert.are.same({ status = 202, headers = { ["X-N"] = "3", ["Content-Type"] = "application/json" },
            body = '{"ok":true}' }, env)
        env = call(fn, new_event({ query = { bad = true } }), true)
        assert.are.equal(500, env.status)
        assert.matches("status must be an integer in 100..599, got 700", decoded(env).detail)
    end)
end)

describe("lua_runtime time bound", function()
    -- A clock that advances 1 ms every time the hook reads it.
    local ticks
    local function fake_clock()
        ticks = 0
        rt.set_clock(function()
            ticks = ticks + 1
            return ticks / 1000
        end)
    end

    local function no_hook_left()
        assert.is_nil((debug.gethook()))
    end

    it("stops a runaway loop once timeout_ms has passed, and the next call is served", function()
        fake_clock()
        local fn = fn_with({ ["handler.lua"] = [[
            local calls = 0
            return function(event)
                calls = calls + 1
                if event.query.spin then while true do end end
                return { calls = calls }
            end
        ]] }, nil, { timeout_ms = 50 })
        assert.are.same({ calls = 1 }, decoded(call(fn)))
        no_hook_left()
        ticks = 0
        local env, status, msg, state = call(fn, new_event({ query = { spin = true } }))
        assert.is_nil(env)
        assert.are.equal(504, status)
        assert.are.equal("runtime timeout", msg)
        assert.are.equal("warm", state)
        -- The budget: 50 ms at 1 ms per look, plus the looks at the start of the call.
        assert.is_true(ticks >= 50 and ticks <= 55, "clock read " .. ticks .. " times")
        no_hook_left()
        assert.matches("exceeded its timeout of 50 ms", logs[#logs].text)
        assert.are.same({ calls = 3 }, decoded(call(fn)))
    end)

    it("cannot be caught by pcall or xpcall in the handler", function()
        fake_clock()
        local fn = fn_with({ ["handler.lua"] = [[
            return function()
                while true do
                    pcall(function() while true do end end)
                    xpcall(function() while true do end end, function() while true do end end)
                end
            end
        ]] }, nil, { timeout_ms = 20 })
        local _, status = call(fn)
        assert.are.equal(504, status)
        assert.is_true(ticks < 100, "clock read " .. ticks .. " times")
        no_hook_left()
    end)

    it("bounds the top level of the file too, and of a module", function()
        fake_clock()
        local fn = fn_with({ ["handler.lua"] = "while true do end" }, nil, { timeout_ms = 10 })
        local _, status, _, state = call(fn)
        assert.are.equal(504, status)
        assert.are.equal("cold", state)
        no_hook_left()

        ticks = 0
        fn = fn_with({ ["handler.lua"] = "return function() return require('spin') end",
            ["spin.lua"] = "local x = 0 while true do x = x + 1 end" }, nil, { timeout_ms = 10 })
        _, status = call(fn)
        assert.are.equal(504, status)
        no_hook_left()
    end)

    it("stops a loop within its budget on the real clock", function()
        local fn = fn_with({ ["handler.lua"] = [[
            return function() local t = {} local i = 0 while true do i = i + 1 t[i % 100 + 1] = i end end
        ]] }, nil, { timeout_ms = 100 })
        local started = os.clock()
        local _, status = call(fn)
        local took = os.clock() - started
        assert.are.equal(504, status)
        assert.is_true(took >= 0.1 and took < 1, "took " .. took .. " s")
        no_hook_left()
    end)

    it("leaves no hook behind after an error", function()
        local fn = fn_with({ ["handler.lua"] = "return function() error('x') end" })
        assert.are.equal(500, call(fn).status)
        no_hook_left()
    end)
end)
