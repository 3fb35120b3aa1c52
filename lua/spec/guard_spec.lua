-- busted lua/spec   (from the repository root; runs under plain Lua 5.1+ or LuaJIT, no nginx)
-- The pure part of fastfn.guard: settings compilation and every branch of the decision. The nginx glue is exercised
-- by the Rust integration tests against real nginx (tests/control_plane.rs).
local here = debug.getinfo(1, "S").source:match("^@(.*)spec/[^/]*$") or "lua/"
package.path = here .. "?.lua;" .. package.path

local json = require "cjson.safe"
local guard = require "fastfn.guard"

local API, UI, HEALTH = guard.API, guard.UI, guard.HEALTH

-- A stand-in for ngx.hmac_sha1: any keyed 20-byte function will do for the decision's logic (real HMAC-SHA1 is
-- exercised against nginx).
local function fake_hmac(key, msg)
    local out = {}
    for i = 1, 20 do
        local acc = i
        for j = 1, #msg do
            acc = (acc * 31 + msg:byte(j) + key:byte((j + i) % #key + 1)) % 256
        end
        out[i] = string.char(acc)
    end
    return table.concat(out)
end

local function hex(s)
    return (s:gsub(".", function(c)
        return string.format("%02x", c:byte())
    end))
end

local KEY_HEX = ("0123456789abcdef"):rep(4)
local TOKEN = "the-admin-token-0123456789abcdef"
local KEY = KEY_HEX:gsub("%x%x", function(p)
    return string.char(tonumber(p, 16))
end)
local MAC_HEX = hex(fake_hmac(KEY, TOKEN))

-- The "guard" object as the supervisor writes it, with overrides (JSON text, so nulls are cjson's).
local function raw(over)
    local g = {
        console_api_enabled = true, admin_api_enabled = true, ui_enabled = false, write_enabled = false,
        local_only = true, token = json.null, trusted_cidrs = {}, trusted_proxy_cidrs = {}, allowed_hosts = {},
        rate_limit = { window_s = 60, read_max = 0, write_max = 0, auth_fail_max = 5, auth_fail_window_s = 300 },
    }
    for k, v in pairs(over or {}) do
        if k == "rate_limit" then
            for rk, rv in pairs(v) do
                g.rate_limit[rk] = rv
            end
        else
            g[k] = v
        end
    end
    local text = json.encode(g):gsub('"trusted_cidrs":{}', '"trusted_cidrs":[]')
        :gsub('"trusted_proxy_cidrs":{}', '"trusted_proxy_cidrs":[]'):gsub('"allowed_hosts":{}', '"allowed_hosts":[]')
    return json.decode(text)
end

local WITH_TOKEN = { token = { key_hex = KEY_HEX, mac_hex = MAC_HEX } }

local function settings(over, mode)
    local s, err = guard.compile(raw(over), mode or "dev", fake_hmac)
    assert.is_nil(err)
    return s
end

local function merge(a, b)
    local t = {}
    for k, v in pairs(a or {}) do
        t[k] = v
    end
    for k, v in pairs(b or {}) do
        t[k] = v
    end
    return t
end

-- A shared-dict stand-in with its own clock.
local function new_store()
    local st = { data = {}, expires = {}, now = 0 }
    local function live(key)
        local e = st.expires[key]
        if e and e <= st.now then
            st.data[key], st.expires[key] = nil, nil
        end
        return st.data[key]
    end
    st.get = function(key)
        return live(key)
    end
    st.incr = function(key, ttl)
        local v = live(key)
        if v == nil then
            st.data[key] = 1
            st.expires[key] = st.now + ttl
            return 1
        end
        st.data[key] = v + 1
        return v + 1
    end
    st.ttl = function(key)
        if live(key) == nil then
            return nil
        end
        return st.expires[key] - st.now
    end
    return st
end

local LOCAL_HOST = { host = "localhost:8080" }

-- decide() with defaults: GET from 127.0.0.1 with Host localhost:8080.
local function call(kind, s, opts)
    opts = opts or {}
    local req = {
        method = opts.method or "GET",
        headers = opts.headers or merge(LOCAL_HOST, opts.add),
        peer = opts.peer or "127.0.0.1",
    }
    return guard.decide(kind, req, s, opts.store or new_store())
end

local function refused(status, msg, kind, s, opts)
    local st, m = call(kind, s, opts)
    assert.are.equal(status, st, m)
    assert.are.equal(msg, m)
end

local function allowed(kind, s, opts)
    local st, m, _, trusted = call(kind, s, opts)
    assert.is_nil(st, m)
    assert.is_true(trusted)
end

describe("guard.compile", function()
    it("accepts the supervisor's file and compiles the token MAC", function()
        local s = settings(WITH_TOKEN)
        assert.are.equal(32, #s.token_key)
        assert.are.equal(20, #s.token_mac)
        assert.is_nil(settings().token_key, "null token: no token")
    end)

    it("names the field of every invalid setting", function()
        local cases = {
            { { ui_enabled = "yes" }, "guard.ui_enabled must be a boolean" },
            { { local_only = json.null }, "guard.local_only must be a boolean" },
            { { token = "secret" }, "guard.token must be null or an object" },
            { { token = { key_hex = "00", mac_hex = MAC_HEX } }, "guard.token.key_hex must be 64 hex digits" },
            { { token = { key_hex = KEY_HEX, mac_hex = MAC_HEX .. "0" } },
              "guard.token.mac_hex must be 40 hex digits" },
            { { trusted_cidrs = { "10.0.0.0/33" } }, "guard.trusted_cidrs: entry 1 (10.0.0.0/33)" },
            { { trusted_proxy_cidrs = { "127.0.0.1/32", "proxy" } }, "guard.trusted_proxy_cidrs: entry 2 (proxy)" },
            { { trusted_cidrs = "10.0.0.0/8" }, "guard.trusted_cidrs must be an array" },
            { { allowed_hosts = { "api.example.com:8443" } },
              "guard.allowed_hosts[0] must be a host name without a port" },
            { { allowed_hosts = { "ok.example", "bad host" } }, "guard.allowed_hosts[1] must be a host name" },
            { { rate_limit = { read_max = 1.5 } }, "guard.rate_limit.read_max must be an integer" },
            { { rate_limit = { window_s = "60" } }, "guard.rate_limit.window_s must be an integer" },
        }
        for _, c in ipairs(cases) do
            local s, err = guard.compile(raw(c[1]), "dev", fake_hmac)
            assert.is_nil(s)
            assert.truthy(err:find(c[2], 1, true), err .. " / expected " .. c[2])
        end
        assert.is_nil((guard.compile(raw(), "prod", fake_hmac)))
        assert.is_nil((guard.compile("x", "dev", fake_hmac)))
        assert.is_nil((guard.compile(raw(), "dev", nil)))
    end)

    it("turns a limit off with a zero window", function()
        local s = settings({ rate_limit = { window_s = 0, read_max = 1, write_max = 1, auth_fail_window_s = 0 } })
        assert.are.equal(0, s.read_max)
        assert.are.equal(0, s.write_max)
        assert.are.equal(0, s.fail_max)
    end)
end)

describe("guard.decide: switches", function()
    it("api and admin switches answer 404, even to the token", function()
        local opts = { add = { ["x-fn-admin-token"] = TOKEN } }
        refused(404, "console api disabled", API, settings(merge(WITH_TOKEN, { console_api_enabled = false })), opts)
        refused(404, "admin api disabled", API, settings(merge(WITH_TOKEN, { admin_api_enabled = false })), opts)
        refused(404, "console api disabled", API,
                settings({ console_api_enabled = false, admin_api_enabled = false }))
    end)

    it("the ui switch answers 404 before anything else; the api switches do not touch the ui", function()
        refused(404, "console ui disabled", UI, settings(), { headers = { host = "evil.example" } })
        allowed(UI, settings({ ui_enabled = true, console_api_enabled = false, admin_api_enabled = false }))
    end)
end)

describe("guard.decide: host", function()
    local s = settings({ allowed_hosts = { "API.example.com", "2001:db8::1" } })

    it("allows loopback names and the configured hosts, any case, any port", function()
        for _, host in ipairs({ "localhost", "LocalHost:8080", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080",
                                "::1", "api.example.com", "Api.Example.Com:8443", "[2001:db8::1]:80" }) do
            allowed(API, s, { headers = { host = host } })
        end
    end)

    it("refuses every other host (DNS rebinding) with 403", function()
        for _, host in ipairs({ "evil.example", "evil.example:8080", "localhost.", "localhost.evil.example",
                                "127.0.0.1.nip.io", "127.0.0.2", "[::1", "[::1]x", "[::2]", "",
                                "api.example.com.evil" }) do
            refused(403, "host not allowed", API, s, { headers = { host = host } })
        end
        refused(403, "host not allowed", API, s, { headers = {} })
        refused(403, "host not allowed", API, s, { headers = { host = { "localhost", "localhost" } } })
    end)

    it("is checked before the token, so a wrong token from a foreign host counts no failure", function()
        local st = new_store()
        refused(403, "host not allowed", API, settings(WITH_TOKEN, "run"),
                { headers = { host = "evil.example", ["x-fn-admin-token"] = "wrong" }, store = st })
        assert.is_nil(next(st.data))
    end)

    it("believes X-Forwarded-Host only from a trusted proxy", function()
        local p = settings({ trusted_proxy_cidrs = { "127.0.0.1/32" }, allowed_hosts = { "api.example.com" } })
        refused(403, "host not allowed", API, p, { add = { ["x-forwarded-host"] = "evil.example" } })
        allowed(API, p, { headers = { host = "127.0.0.1:8080", ["x-forwarded-host"] = "api.example.com" } })
        allowed(API, p, { headers = { host = "evil.example", ["x-forwarded-host"] = "evil.example, api.example.com" } })
        -- From an untrusted peer the Host header decides, and the X-Forwarded-Host voids local trust.
        refused(403, "host not allowed", API, s,
                { peer = "127.0.0.1", headers = { host = "evil.example", ["x-forwarded-host"] = "api.example.com" } })
        refused(403, "console api local-only", API, s,
                { headers = { host = "localhost", ["x-forwarded-host"] = "evil.example" } })
    end)
end)

describe("guard.decide: who is local (dev)", function()
    local s = settings()

    it("trusts exactly 127.0.0.1 and ::1", function()
        allowed(API, s, { peer = "127.0.0.1" })
        allowed(API, s, { peer = "::1" })
        for _, peer in ipairs({ "127.0.0.2", "::ffff:127.0.0.1", "10.0.0.1", "192.168.1.5", "172.17.0.1", "fd00::1",
                                "fe80::1", "169.254.1.1", "203.0.113.9", "" }) do
            refused(403, "console api local-only", API, s, { peer = peer })
        end
        local status = guard.decide(API, { method = "GET", headers = LOCAL_HOST }, s, new_store())
        assert.are.equal(403, status, "no peer address")
    end)

    it("extends local with trusted_cidrs", function()
        local t = settings({ trusted_cidrs = { "10.1.0.0/16", "127.0.0.2/32" } })
        allowed(API, t, { peer = "10.1.200.3" })
        allowed(API, t, { peer = "127.0.0.2" })
        refused(403, "console api local-only", API, t, { peer = "10.2.0.1" })
    end)

    it("lets anyone in when local_only is off (dev only)", function()
        allowed(API, settings({ local_only = false }), { peer = "203.0.113.9" })
        refused(401, "admin token required", API, settings({ local_only = false }, "run"), { peer = "203.0.113.9" })
    end)

    it("voids local trust when an untrusted peer sends forwarding headers", function()
        local t = settings({ trusted_cidrs = { "10.1.0.0/16" } })
        for _, h in ipairs({ "x-forwarded-for", "forwarded", "x-forwarded-host", "x-real-ip" }) do
            local value = h == "forwarded" and "for=127.0.0.1"
                or (h == "x-forwarded-host" and "localhost" or "127.0.0.1")
            refused(403, "console api local-only", API, s, { add = { [h] = value } })
            refused(403, "console api local-only", API, s, { add = { [h] = "" } })
            refused(403, "console api local-only", API, t, { peer = "10.1.0.5", add = { [h] = value } })
        end
    end)

    it("takes the right-most non-proxy X-Forwarded-For entry behind a trusted proxy", function()
        local p = settings({ trusted_proxy_cidrs = { "127.0.0.1/32", "10.0.0.0/8" },
                             trusted_cidrs = { "192.0.2.0/24" } })
        allowed(API, p, { add = { ["x-forwarded-for"] = "127.0.0.1" } })
        allowed(API, p, { add = { ["x-forwarded-for"] = "::1" } })
        allowed(API, p, { add = { ["x-forwarded-for"] = "192.0.2.7, 10.0.0.3" } })
        allowed(API, p, {}, "no X-Forwarded-For: the peer is the client")
        allowed(API, p, { add = { ["forwarded"] = "for=203.0.113.9", ["x-real-ip"] = "203.0.113.9" } })
        refused(403, "console api local-only", API, p, { add = { ["x-forwarded-for"] = "203.0.113.9" } })
        -- A client cannot prepend its way in: the proxy appended the real address last.
        refused(403, "console api local-only", API, p, { add = { ["x-forwarded-for"] = "127.0.0.1, 203.0.113.9" } })
        refused(403, "console api local-only", API, p,
                { add = { ["x-forwarded-for"] = "192.0.2.7, 127.0.0.2, 10.0.0.3" } })
        refused(403, "console api local-only", API, p,
                { add = { ["x-forwarded-for"] = { "127.0.0.1", "203.0.113.9, 10.9.9.9" } } })
        refused(403, "console api local-only", API, p, { add = { ["x-forwarded-for"] = "garbage" } })
        allowed(API, p, { add = { ["x-forwarded-for"] = " 192.0.2.7 ,, , " } })
        -- A peer outside the proxy list is not believed.
        refused(403, "console api local-only", API, p,
                { peer = "203.0.113.1", add = { ["x-forwarded-for"] = "127.0.0.1" } })
    end)

    it("finds the forwarded client for the counters", function()
        local p = settings({ trusted_proxy_cidrs = { "10.0.0.0/8" } })
        assert.are.equal("203.0.113.9", guard.forwarded_client(p, "1.1.1.1, 203.0.113.9, 10.0.0.2", "10.0.0.1"))
        assert.are.equal("10.0.0.1", guard.forwarded_client(p, "10.0.0.3, 10.0.0.2", "10.0.0.1"))
        assert.are.equal("10.0.0.1", guard.forwarded_client(p, "", "10.0.0.1"))
        assert.are.equal("10.0.0.1", guard.forwarded_client(p, nil, "10.0.0.1"))
    end)
end)

describe("guard.decide: the admin token", function()
    it("run mode needs it, even from loopback", function()
        local s = settings(WITH_TOKEN, "run")
        refused(401, "admin token required", API, s)
        refused(401, "admin token required", API, s, { peer = "::1" })
        local st, _, _, trusted, authenticated = call(API, s, { add = { ["x-fn-admin-token"] = TOKEN } })
        assert.is_nil(st)
        assert.is_true(trusted)
        assert.is_true(authenticated)
        allowed(API, s, { peer = "203.0.113.9", add = { ["x-fn-admin-token"] = TOKEN } })
        allowed(API, s,
                { peer = "203.0.113.9", add = { ["x-fn-admin-token"] = TOKEN, ["x-forwarded-for"] = "1.2.3.4" } })
    end)

    it("run mode without a configured token refuses every call", function()
        local s = settings(nil, "run")
        refused(401, "admin token required", API, s)
        refused(401, "admin token required", API, s, { add = { ["x-fn-admin-token"] = TOKEN } })
    end)

    it("refuses a wrong, empty, near or duplicated token with 401 and counts it", function()
        local s = settings(WITH_TOKEN, "dev")
        local st = new_store()
        for _, bad in ipairs({ "wrong", "", TOKEN .. "x", TOKEN:sub(1, -2), TOKEN:upper() }) do
            refused(401, "invalid admin token", API, s, { add = { ["x-fn-admin-token"] = bad }, store = new_store() })
        end
        refused(401, "invalid admin token", API, s, { add = { ["x-fn-admin-token"] = { TOKEN, TOKEN } }, store = st })
        assert.are.equal(1, st.data["authfail:127.0.0.1"])
        -- A wrong token is refused even where no token is needed (dev, loopback).
        refused(401, "invalid admin token", API, s, { peer = "::1", add = { ["x-fn-admin-token"] = "nope" } })
    end)

    it("dev mode: the token admits remote callers", function()
        allowed(API, settings(WITH_TOKEN), { peer = "203.0.113.9", add = { ["x-fn-admin-token"] = TOKEN } })
    end)

    it("ignores the header when no token is configured", function()
        allowed(API, settings(), { add = { ["x-fn-admin-token"] = "anything" } })
        refused(403, "console api local-only", API, settings(),
                { peer = "203.0.113.9", add = { ["x-fn-admin-token"] = "anything" } })
    end)

    it("locks a client out after auth_fail_max failures, right token included, until the window ends", function()
        local s = settings(merge(WITH_TOKEN, { rate_limit = { auth_fail_max = 3, auth_fail_window_s = 300 } }), "run")
        local st = new_store()
        for _ = 1, 3 do
            refused(401, "invalid admin token", API, s, { add = { ["x-fn-admin-token"] = "nope" }, store = st })
        end
        st.now = 100
        local status, msg, retry = call(API, s, { add = { ["x-fn-admin-token"] = TOKEN }, store = st })
        assert.are.equal(429, status)
        assert.are.equal("too many failed admin token attempts, try again later", msg)
        assert.are.equal(200, retry)
        -- A locked-out request is not counted again, and a call without the token is not affected by the lock.
        assert.are.equal(3, st.data["authfail:127.0.0.1"])
        refused(401, "admin token required", API, s, { store = st })
        -- Another client is not locked out.
        allowed(API, s, { peer = "::1", add = { ["x-fn-admin-token"] = TOKEN }, store = st })
        st.now = 300
        allowed(API, s, { add = { ["x-fn-admin-token"] = TOKEN }, store = st })
    end)

    it("keys the lockout on the forwarded client behind a trusted proxy", function()
        local s = settings(merge(WITH_TOKEN, { trusted_proxy_cidrs = { "127.0.0.1/32" },
                                               rate_limit = { auth_fail_max = 1 } }), "run")
        local st = new_store()
        refused(401, "invalid admin token", API, s,
                { add = { ["x-fn-admin-token"] = "x", ["x-forwarded-for"] = "203.0.113.9" }, store = st })
        assert.are.equal(1, st.data["authfail:203.0.113.9"])
        refused(429, "too many failed admin token attempts, try again later", API, s,
                { add = { ["x-fn-admin-token"] = TOKEN, ["x-forwarded-for"] = "203.0.113.9" }, store = st })
        allowed(API, s, { add = { ["x-fn-admin-token"] = TOKEN, ["x-forwarded-for"] = "203.0.113.10" }, store = st })
    end)

    it("has no lockout when auth_fail_max is 0", function()
        local s = settings(merge(WITH_TOKEN, { rate_limit = { auth_fail_max = 0 } }), "run")
        local st = new_store()
        for _ = 1, 20 do
            refused(401, "invalid admin token", API, s, { add = { ["x-fn-admin-token"] = "nope" }, store = st })
        end
        assert.is_nil(next(st.data))
        allowed(API, s, { add = { ["x-fn-admin-token"] = TOKEN }, store = st })
    end)
end)

describe("guard.decide: rate limits", function()
    local LIMITS = { rate_limit = { window_s = 60, read_max = 3, write_max = 1 } }

    it("refuses reads past read_max with 429 and the seconds left in Retry-After", function()
        local s = settings(LIMITS)
        local st = new_store()
        for _ = 1, 2 do
            allowed(API, s, { store = st })
        end
        allowed(API, s, { method = "HEAD", store = st })
        st.now = 20
        local status, msg, retry = call(API, s, { store = st })
        assert.are.equal(429, status)
        assert.are.equal("too many console requests, try again later", msg)
        assert.are.equal(40, retry)
        -- Other clients have their own counter; the window ends.
        allowed(API, s, { peer = "::1", store = st })
        st.now = 60
        allowed(API, s, { store = st })
    end)

    it("counts every call on one counter, judged against the method's limit", function()
        local s = settings(merge(LIMITS, { write_enabled = true }))
        local st = new_store()
        local write = { method = "POST", add = { ["x-fn-request"] = "1" }, store = st }
        allowed(API, s, write)
        refused(429, "too many console requests, try again later", API, s, write)
        allowed(API, s, { store = st })
        refused(429, "too many console requests, try again later", API, s, { store = st })
        refused(429, "too many console requests, try again later", API, s,
                { method = "OPTIONS", store = st }, "OPTIONS counts against write_max")
    end)

    it("applies to token holders too, and not to refused callers", function()
        local s = settings(merge(WITH_TOKEN, LIMITS), "run")
        local st = new_store()
        local opts = { add = { ["x-fn-admin-token"] = TOKEN }, store = st }
        for _ = 1, 3 do
            allowed(API, s, opts)
        end
        refused(429, "too many console requests, try again later", API, s, opts)
        local other = new_store()
        for _ = 1, 5 do
            refused(401, "admin token required", API, s, { store = other })
        end
        assert.is_nil(next(other.data))
    end)

    it("is off when the max is 0 or less", function()
        local s = settings({ rate_limit = { read_max = 0, write_max = -1 } })
        local st = new_store()
        for _ = 1, 50 do
            allowed(API, s, { store = st })
        end
        assert.is_nil(next(st.data))
    end)

    it("keeps the ui on its own counter", function()
        local s = settings(merge(LIMITS, { ui_enabled = true }))
        local st = new_store()
        for _ = 1, 3 do
            allowed(API, s, { store = st })
        end
        allowed(UI, s, { store = st })
        assert.are.equal(1, st.data["rl:ui:127.0.0.1"])
        assert.are.equal(3, st.data["rl:api:127.0.0.1"])
    end)
end)

describe("guard.decide: writes", function()
    local s = settings({ write_enabled = true })
    local function post(headers, extra)
        local h = merge(merge(LOCAL_HOST, { ["x-fn-request"] = "1" }), headers)
        return merge({ method = "POST", headers = h }, extra)
    end

    it("allow a same-origin write with the CSRF header", function()
        allowed(API, s, post({}))
        allowed(API, s, post({ origin = "http://localhost:8080" }))
        allowed(API, s, post({ origin = "HTTPS://LOCALHOST:8080" }), "case-insensitive")
        allowed(API, s, post({ ["sec-fetch-mode"] = "cors", ["sec-fetch-site"] = "same-origin" }))
        allowed(API, s, post({ ["sec-fetch-site"] = "same-site" }))
        for _, m in ipairs({ "PUT", "DELETE", "PATCH" }) do
            allowed(API, s, post({}, { method = m }))
        end
    end)

    it("refuse cross-origin writes with 403, token or not", function()
        local t = settings(merge(WITH_TOKEN, { write_enabled = true }))
        for _, h in ipairs({
            { origin = "null" }, { origin = "https://evil.example" }, { origin = "http://localhost:9999" },
            { origin = "http://localhost" }, { origin = "http://localhost:8080/" }, { origin = "localhost:8080" },
            { origin = "http://user@localhost:8080" },
            { origin = { "http://localhost:8080", "http://localhost:8080" } },
            { ["sec-fetch-mode"] = "no-cors" }, { ["sec-fetch-mode"] = "No-Cors" },
            { ["sec-fetch-site"] = "cross-site" }, { upgrade = "websocket" },
        }) do
            refused(403, "cross-origin request refused", API, s, post(h))
            refused(403, "cross-origin request refused", API, t, post(merge(h, { ["x-fn-admin-token"] = TOKEN })))
        end
    end)

    it("refuse an Upgrade on any method, and leave other reads alone", function()
        refused(403, "cross-origin request refused", API, s, { add = { upgrade = "websocket" } })
        allowed(API, s, { add = { origin = "https://evil.example", ["sec-fetch-site"] = "cross-site" } })
        allowed(API, s, { method = "OPTIONS", add = { origin = "https://evil.example" } })
    end)

    it("compare the Origin with the forwarded host behind a trusted proxy", function()
        local p = settings({ write_enabled = true, trusted_proxy_cidrs = { "127.0.0.1/32" },
                             allowed_hosts = { "api.example.com" } })
        allowed(API, p, post({ host = "127.0.0.1:8080", ["x-forwarded-host"] = "api.example.com",
                               origin = "https://api.example.com" }))
        refused(403, "cross-origin request refused", API, p,
                post({ host = "127.0.0.1:8080", ["x-forwarded-host"] = "api.example.com",
                       origin = "http://127.0.0.1:8080" }))
    end)

    it("need X-Fn-Request: 1 without the token", function()
        for _, v in ipairs({ "yes", "true", "0", "", " 1" }) do
            refused(403, "missing CSRF header", API, s, post({ ["x-fn-request"] = v }))
        end
        refused(403, "missing CSRF header", API, s, { method = "POST" })
        refused(403, "missing CSRF header", API, s, post({ ["x-fn-request"] = { "1", "1" } }))
        allowed(API, s, { method = "GET" }, "reads need no CSRF header")
    end)

    it("need write_enabled without the token", function()
        local off = settings()
        refused(403, "console write disabled", API, off, post({}))
        refused(403, "missing CSRF header", API, off, { method = "DELETE" }, "CSRF comes first")
        allowed(API, settings(WITH_TOKEN), { method = "POST", add = { ["x-fn-admin-token"] = TOKEN } })
        allowed(API, settings(WITH_TOKEN, "run"), { method = "DELETE", add = { ["x-fn-admin-token"] = TOKEN } })
    end)

    it("from remote callers: local_only refuses first; without it a dev write is allowed", function()
        refused(403, "console api local-only", API, s, post({}, { peer = "203.0.113.9" }))
        allowed(API, settings({ write_enabled = true, local_only = false }), post({}, { peer = "203.0.113.9" }))
    end)
end)

describe("guard.decide: the console ui", function()
    local s = settings({ ui_enabled = true })

    it("runs host, token, locality and rate limit like the api", function()
        allowed(UI, s)
        refused(403, "host not allowed", UI, s, { headers = { host = "evil.example" } })
        refused(403, "console ui local-only", UI, s, { peer = "127.0.0.2" })
        refused(403, "console ui local-only", UI, s, { add = { ["x-forwarded-for"] = "127.0.0.1" } })
        refused(401, "admin token required", UI, settings({ ui_enabled = true }, "run"))
        local t = settings(merge(WITH_TOKEN, { ui_enabled = true }), "run")
        refused(401, "invalid admin token", UI, t, { add = { ["x-fn-admin-token"] = "x" } })
        allowed(UI, t, { add = { ["x-fn-admin-token"] = TOKEN } })
        local l = settings({ ui_enabled = true, rate_limit = { read_max = 1 } })
        local st = new_store()
        allowed(UI, l, { store = st })
        refused(429, "too many console requests, try again later", UI, l, { store = st })
    end)

    it("has no write checks of its own (its content answers 501)", function()
        allowed(UI, s, { method = "POST" })
    end)
end)

describe("guard.decide: /_fn/health", function()
    local function trusted(s, opts)
        local st, _, _, t = call(HEALTH, s, opts)
        assert.is_nil(st)
        return t
    end

    it("is never refused and tells whether the caller is trusted", function()
        assert.is_true(trusted(settings()))
        assert.is_false(trusted(settings(), { peer = "127.0.0.2" }))
        assert.is_false(trusted(settings(), { add = { ["x-forwarded-for"] = "127.0.0.1" } }))
        assert.is_false(trusted(settings(), { headers = { host = "evil.example" } }))
        assert.is_false(trusted(settings({ console_api_enabled = false })))
        assert.is_false(trusted(settings({ admin_api_enabled = false })))
        assert.is_false(trusted(settings(WITH_TOKEN, "run")))
        assert.is_true(trusted(settings(WITH_TOKEN, "run"), { add = { ["x-fn-admin-token"] = TOKEN } }))
        assert.is_true(trusted(settings(WITH_TOKEN), { peer = "203.0.113.9", add = { ["x-fn-admin-token"] = TOKEN } }))
    end)

    it("is no token oracle: wrong tokens count and the lockout holds", function()
        local s = settings(merge(WITH_TOKEN, { rate_limit = { auth_fail_max = 2 } }), "run")
        local st = new_store()
        assert.is_false(trusted(s, { add = { ["x-fn-admin-token"] = "a" }, store = st }))
        assert.is_false(trusted(s, { add = { ["x-fn-admin-token"] = "b" }, store = st }))
        assert.are.equal(2, st.data["authfail:127.0.0.1"])
        assert.is_false(trusted(s, { add = { ["x-fn-admin-token"] = TOKEN }, store = st }))
        refused(429, "too many failed admin token attempts, try again later", API, s,
                { add = { ["x-fn-admin-token"] = TOKEN }, store = st })
    end)

    it("is not rate limited", function()
        local s = settings({ rate_limit = { read_max = 1 } })
        local st = new_store()
        for _ = 1, 10 do
            assert.is_true(trusted(s, { store = st }))
        end
        assert.is_nil(next(st.data))
    end)
end)

describe("guard helpers", function()
    it("host_allowed strips the port only", function()
        local s = settings({ allowed_hosts = { "a.example" } })
        assert.truthy(guard.host_allowed(s, "a.example:1"))
        assert.falsy(guard.host_allowed(s, "a.example:1:2"))
        assert.falsy(guard.host_allowed(s, nil))
    end)

    it("same_origin wants scheme://host[:port] equal to the host", function()
        assert.is_true(guard.same_origin("http://a:1", "A:1"))
        assert.is_false(guard.same_origin("http://a:1", "a"))
        assert.is_false(guard.same_origin("null", "a"))
        assert.is_false(guard.same_origin("http://", "a"))
    end)
end)
