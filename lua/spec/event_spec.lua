-- busted lua/spec   (from the repository root; no nginx)
-- fastfn.event: the payload a worker gets (assembled from pieces, for speed) must carry exactly what encoding the
-- event table would. The request accessors of ngx are stubbed; the real ones run in the Rust integration tests.
local here = debug.getinfo(1, "S").source:match("^@(.*)spec/[^/]*$") or "lua/"
package.path = here .. "?.lua;" .. package.path

local cjson = require "cjson.safe"

describe("fastfn.event", function()
    local event
    local request

    setup(function()
        _G.ngx = {
            var = setmetatable({}, { __index = function(_, k) return request.var[k] end }),
            req = {
                get_uri_args = function() return request.query end,
                get_headers = function() return request.headers end,
            },
            now = function() return 1795424224.079 end,
            worker = { pid = function() return 4242 end },
        }
        package.loaded["fastfn.event"] = nil
        event = require "fastfn.event"
    end)

    teardown(function()
        _G.ngx = nil
        package.loaded["fastfn.event"] = nil
    end)

    local fn = {
        runtime = "node", name = "api/users/index.js", version = "default", timeout_ms = 2500,
        max_body_bytes = 1048576, env = { TOKEN = "s3cr\"et/1" },
    }

    local function both(method, path, params, body)
        local id, ts, ts_text = event.new_id()
        local from_table = event.build(fn, method, path, params, body, id, ts)
        local payload = assert(cjson.decode(event.encode(fn, method, path, params, body, id, ts_text)))
        return { event = from_table }, payload, id
    end

    it("carries what the event table carries: a GET without body or cookie", function()
        request = {
            var = { request_uri = "/users/42?x=1&x=2", remote_addr = "127.0.0.1" },
            query = { x = { "1", "2" }, flag = true },
            headers = { host = "example.com", ["user-agent"] = "wrk", accept = { "a/b", "c/d" } },
        }
        local expected, got, id = both("GET", "/users/42", { id = "42" }, nil)
        assert.same(cjson.decode(cjson.encode(expected)), got)
        assert.equal(id, got.event.context.request_id)
        assert.equal(1795424224079, got.event.ts)
        assert.is_nil(got.event.body)
        assert.is_nil(got.event.session)
        assert.same({ worker_pid = 4242 }, got.event.context.gateway)
    end)

    it("carries a body with quotes, unicode and newlines, a session and empty params", function()
        request = {
            var = { request_uri = "/p/\"q\"", remote_addr = "::1" },
            query = {},
            headers = { cookie = { "sid=abc", "theme=dark" } },
        }
        local expected, got = both("POST", "/p/\"q\"", {}, 'línea "uno"\n\0two')
        assert.same(cjson.decode(cjson.encode(expected)), got)
        assert.equal("abc", got.event.session.id)
        assert.is_nil(got.event.client.ua)
    end)

    it("leaves env out for a function without one", function()
        request = { var = { request_uri = "/", remote_addr = "127.0.0.1" }, query = {}, headers = {} }
        local bare = {
            runtime = "python", name = "x/handler.py", version = "default", timeout_ms = 1, max_body_bytes = 1,
        }
        local id, _, ts_text = event.new_id()
        local got = assert(cjson.decode(event.encode(bare, "GET", "/", {}, nil, id, ts_text)))
        assert.is_nil(got.event.env)
        assert.equal("python", got.event.context.runtime)
    end)
end)
