-- busted lua/spec   (from the repository root; no nginx)
-- How fastfn.dispatch picks the worker of a function's pool. The socket exchange itself runs against real nginx and
-- real workers in the Rust integration tests.
local here = debug.getinfo(1, "S").source:match("^@(.*)spec/[^/]*$") or "lua/"
package.path = here .. "?.lua;" .. package.path

describe("fastfn.dispatch pick", function()
    local dispatch

    setup(function()
        -- The module only touches ngx.socket.tcp and the log levels at load.
        _G.ngx = { socket = { tcp = function() end }, log = function() end, WARN = 4, INFO = 7 }
        dispatch = require "fastfn.dispatch"
    end)

    teardown(function()
        _G.ngx = nil
        package.loaded["fastfn.dispatch"] = nil
    end)

    local function pool(n)
        local fn = { pool = n, next_worker = 0, inflight = {} }
        for w = 1, n do
            fn.inflight[w] = 0
        end
        return fn
    end

    it("rotates over an idle pool, so every worker gets started", function()
        local fn = pool(3)
        local seen = {}
        for i = 1, 6 do
            seen[i] = dispatch.pick(fn)
        end
        assert.same({ 1, 2, 3, 1, 2, 3 }, seen)
    end)

    it("passes over a worker busy with a slow request while another is free", function()
        local fn = pool(2)
        fn.inflight[1] = 1 -- a blocking handler holds worker 1
        for _ = 1, 4 do
            assert.equal(2, dispatch.pick(fn))
        end
    end)

    it("takes the least busy when all are busy, and one worker is always the answer for a pool of one", function()
        local fn = pool(3)
        fn.inflight = { 4, 2, 3 }
        assert.equal(2, dispatch.pick(fn))
        local single = pool(1)
        single.inflight[1] = 9
        assert.equal(1, dispatch.pick(single))
    end)
end)
