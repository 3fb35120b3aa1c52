-- busted lua/spec   (from the repository root; runs under plain Lua 5.1+ or LuaJIT, no nginx)
local here = debug.getinfo(1, "S").source:match("^@(.*)spec/[^/]*$") or "lua/"
package.path = here .. "?.lua;" .. package.path

local cidr = require "fastfn.cidr"

local function set(list)
    local s, err = cidr.new(list)
    assert.is_nil(err)
    return s
end

describe("cidr.new", function()
    it("refuses invalid entries, naming the entry", function()
        for _, bad in ipairs({
            "", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0.0/8", "256.0.0.0/8", "010.0.0.0/8", "10.0.0.0/",
            "10.0.0.0/-1", "10.0.0.0/08", "10.0.0.0/8/8", "10.0.0.0 /8", " 10.0.0.0/8", "1:2:3:4:5:6:7:8:9",
            "1::2::3", ":1:2", "1:2:", "12345::", "fe80::1%eth0", "[::1]", "::1/x", "localhost", "1.2.3.4:80",
            "::ffff:1.2.3", "::1.2.3.4.5", "1:2:3:4:5:6:7:1.2.3.4",
        }) do
            local s, err = cidr.new({ "127.0.0.1/32", bad })
            assert.is_nil(s, bad)
            assert.truthy(err:find("entry 2 (" .. bad .. ")", 1, true), err)
        end
        assert.is_nil((cidr.new({ 7 })))
        assert.is_nil((cidr.new("10.0.0.0/8")))
    end)

    it("accepts the empty list, which contains nothing", function()
        local s = set({})
        assert.is_false(s:contains("127.0.0.1"))
        assert.is_false(s:contains("::1"))
    end)
end)

describe("cidr.contains, IPv4", function()
    it("matches inside the prefix only", function()
        local s = set({ "10.1.0.0/16" })
        assert.is_true(s:contains("10.1.0.0"))
        assert.is_true(s:contains("10.1.255.255"))
        assert.is_true(s:contains("10.1.2.3"))
        assert.is_false(s:contains("10.2.0.0"))
        assert.is_false(s:contains("10.0.255.255"))
        assert.is_false(s:contains("11.1.2.3"))
    end)

    it("handles /32, a bare address, /0 and odd prefix lengths", function()
        local one = set({ "127.0.0.1/32" })
        assert.is_true(one:contains("127.0.0.1"))
        assert.is_false(one:contains("127.0.0.2"))
        local bare = set({ "192.0.2.7" })
        assert.is_true(bare:contains("192.0.2.7"))
        assert.is_false(bare:contains("192.0.2.6"))
        local all = set({ "0.0.0.0/0" })
        assert.is_true(all:contains("0.0.0.0"))
        assert.is_true(all:contains("255.255.255.255"))
        assert.is_false(all:contains("::1"), "an IPv4 /0 is not every IPv6 address")
        local odd = set({ "172.16.0.0/12" })
        assert.is_true(odd:contains("172.31.255.255"))
        assert.is_false(odd:contains("172.32.0.0"))
        assert.is_false(odd:contains("172.15.255.255"))
    end)

    it("ignores host bits in the entry", function()
        local s = set({ "10.1.2.3/16" })
        assert.is_true(s:contains("10.1.200.1"))
    end)

    it("matches nothing for strings that are not addresses", function()
        local s = set({ "0.0.0.0/0", "::/0" })
        for _, bad in ipairs({ "", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", " 1.2.3.4", "1.2.3.4 ", "unix:",
                               "1.2.3.4:80", "[::1]", "::1%lo", "x" }) do
            assert.is_false(s:contains(bad), bad)
        end
        assert.is_false(s:contains(nil))
    end)

    it("matches a substring without taking it out", function()
        local s = set({ "10.0.0.0/8" })
        local text = "a, 10.9.8.7 ,b"
        assert.is_true(s:contains(text, 4, 11))
        assert.is_false(s:contains(text, 4, 12))
        assert.is_false(s:contains(text, 5, 4))
    end)
end)

describe("cidr.contains, IPv6", function()
    it("matches ::1 in every spelling, and only it, for ::1/128", function()
        local s = set({ "::1/128" })
        assert.is_true(s:contains("::1"))
        assert.is_true(s:contains("0:0:0:0:0:0:0:1"))
        assert.is_true(s:contains("0000:0000::0001"))
        assert.is_false(s:contains("::2"))
        assert.is_false(s:contains("::"))
        assert.is_false(s:contains("127.0.0.1"), "families never mix")
    end)

    it("keeps ::ffff:127.0.0.1 apart from 127.0.0.1 unless it is listed", function()
        assert.is_false(set({ "127.0.0.1/32" }):contains("::ffff:127.0.0.1"))
        assert.is_false(set({ "127.0.0.0/8" }):contains("::ffff:7f00:1"))
        assert.is_true(set({ "::ffff:127.0.0.1/128" }):contains("::ffff:127.0.0.1"))
        assert.is_true(set({ "::ffff:127.0.0.1" }):contains("::ffff:7f00:1"), "same address, other spelling")
        assert.is_true(set({ "::ffff:0:0/96" }):contains("::ffff:10.1.2.3"))
        assert.is_false(set({ "::ffff:0:0/96" }):contains("::fffe:10.1.2.3"))
    end)

    it("handles /0, /128, prefixes inside a group and :: anywhere", function()
        assert.is_true(set({ "::/0" }):contains("2001:db8::1"))
        assert.is_false(set({ "::/0" }):contains("10.0.0.1"))
        local s = set({ "2001:db8::/32" })
        assert.is_true(s:contains("2001:db8::"))
        assert.is_true(s:contains("2001:DB8:ffff:ffff:ffff:ffff:ffff:ffff"))
        assert.is_false(s:contains("2001:db9::"))
        local ula = set({ "fd00::/8" })
        assert.is_true(ula:contains("fd12:3456::1"))
        assert.is_false(ula:contains("fc00::1"))
        local seven = set({ "fe80::/10" })
        assert.is_true(seven:contains("febf::1"))
        assert.is_false(seven:contains("fec0::1"))
        local full = set({ "1:2:3:4:5:6:7:8/128" })
        assert.is_true(full:contains("1:2:3:4:5:6:7:8"))
        assert.is_false(full:contains("1:2:3:4:5:6:7:9"))
        assert.is_true(set({ "1::" }):contains("1:0:0:0:0:0:0:0"))
        assert.is_true(set({ "1:2::7:8" }):contains("1:2:0:0:0:0:7:8"))
        assert.is_true(set({ "64:ff9b::192.0.2.33" }):contains("64:ff9b::c000:221"))
    end)

    it("refuses malformed IPv6 text", function()
        local s = set({ "::/0" })
        for _, bad in ipairs({ ":::", "1:::2", "1::2::3", ":1::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
                               "::1:2:3:4:5:6:7:8", "12345::1", "g::1", "1:2:3:4:5:6:7", "::ffff:1.2.3.04",
                               "::1.2.3.4:5", "fe80::1%eth0", ":", "1:" }) do
            assert.is_false(s:contains(bad), bad)
        end
        assert.is_true(s:contains("1:2:3:4:5:6:7::"), ":: may stand for one group")
        assert.is_true(s:contains("::2:3:4:5:6:7:8"))
    end)
end)

describe("cidr.is_address", function()
    it("tells addresses from other text", function()
        assert.is_true(cidr.is_address("1.2.3.4"))
        assert.is_true(cidr.is_address("::"))
        assert.is_false(cidr.is_address("1.2.3.4/8"))
        assert.is_false(cidr.is_address("example.com"))
        assert.is_false(cidr.is_address(""))
    end)
end)
