local hostmatch = require "fastfn.hostmatch"

describe("hostmatch", function()
    local m = hostmatch.compile({ "api.example.com", "*.example.org", "admin.example.net:8443", "[::1]" })

    it("matches exact hosts with any port, case-insensitively", function()
        assert.is_true(hostmatch.allows(m, "api.example.com"))
        assert.is_true(hostmatch.allows(m, "API.Example.com:8080"))
        assert.is_false(hostmatch.allows(m, "example.com"))
        assert.is_false(hostmatch.allows(m, "api.example.com.evil"))
    end)

    it("matches subdomains of a wildcard but not the apex", function()
        assert.is_true(hostmatch.allows(m, "a.example.org"))
        assert.is_true(hostmatch.allows(m, "a.b.example.org:443"))
        assert.is_false(hostmatch.allows(m, "example.org"))
        assert.is_false(hostmatch.allows(m, "badexample.org"))
    end)

    it("matches an entry with a port only on that authority", function()
        assert.is_true(hostmatch.allows(m, "admin.example.net:8443"))
        assert.is_false(hostmatch.allows(m, "admin.example.net"))
        assert.is_false(hostmatch.allows(m, "admin.example.net:80"))
    end)

    it("handles bracketed IPv6 and empty input", function()
        assert.is_true(hostmatch.allows(m, "[::1]:8080"))
        assert.is_false(hostmatch.allows(m, ""))
        assert.is_false(hostmatch.allows(m, nil))
    end)
end)
