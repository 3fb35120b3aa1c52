-- busted lua/spec   (from the repository root; runs under plain Lua 5.1+ or LuaJIT, no nginx)
local here = debug.getinfo(1, "S").source:match("^@(.*)spec/[^/]*$") or "lua/"
package.path = here .. "?.lua;" .. package.path

local frame = require "fastfn.frame"

describe("frame", function()
    it("encodes the length as 4 bytes big-endian", function()
        assert.are.equal("\0\0\0\2{}", frame.encode("{}"))
        assert.are.equal("\0\0\1\0", frame.header(256))
        assert.are.equal("\1\2\3\4", frame.header(16909060))
        assert.are.equal("\255\255\255\255", frame.header(4294967295))
        assert.are.equal("\0\0\0\0", frame.header(0))
    end)

    it("refuses lengths 4 bytes cannot hold and non-strings", function()
        assert.has_error(function() frame.header(-1) end)
        assert.has_error(function() frame.header(4294967296) end)
        assert.has_error(function() frame.header(1.5) end)
        assert.has_error(function() frame.encode(nil) end)
    end)

    it("decodes a header back to the length", function()
        for _, n in ipairs({ 2, 255, 256, 65535, 65536, 10485760 }) do
            assert.are.equal(n, frame.decode_len(frame.header(n)))
        end
    end)

    it("rejects lengths 0 and 1 and lengths over the limit", function()
        assert.are.same({ nil, "frame too short" }, { frame.decode_len("\0\0\0\0") })
        assert.are.same({ nil, "frame too short" }, { frame.decode_len("\0\0\0\1") })
        assert.are.equal(frame.MAX_RESPONSE, frame.decode_len(frame.header(frame.MAX_RESPONSE)))
        assert.are.same({ nil, "frame too large" }, { frame.decode_len(frame.header(frame.MAX_RESPONSE + 1)) })
        assert.are.same({ nil, "frame too large" }, { frame.decode_len(frame.header(101), 100) })
        assert.are.equal(100, frame.decode_len(frame.header(100), 100))
        assert.are.same({ nil, "short header" }, { frame.decode_len("\0\0\2") })
        assert.are.same({ nil, "short header" }, { frame.decode_len(nil) })
    end)

    it("splits frames off a buffer", function()
        local buf = frame.encode('{"a":1}') .. frame.encode("{}") .. "\0\0"
        local p, rest = frame.decode(buf)
        assert.are.equal('{"a":1}', p)
        p, rest = frame.decode(rest)
        assert.are.equal("{}", p)
        assert.are.same({ nil, "incomplete" }, { frame.decode(rest) })
        assert.are.same({ nil, "incomplete" }, { frame.decode("\0\0\0\5{}") })
        assert.are.same({ nil, "frame too short" }, { frame.decode("\0\0\0\1{") })
    end)

    it("round-trips binary-safe payloads", function()
        local payload = string.rep("\0\255x", 1000)
        local p, rest = frame.decode(frame.encode(payload))
        assert.are.equal(payload, p)
        assert.are.equal("", rest)
    end)
end)
