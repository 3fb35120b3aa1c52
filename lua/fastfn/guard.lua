-- The control-plane access guard (DESIGN.md decision 3): the access phase of every `/_fn/*` and `/console/*`
-- request, before any handler runs.
--
--   configure(raw, mode)  init_by_lua: compiles the settings file's "guard" object (CIDR sets, host set, token MAC).
--   api()                 access_by_lua of /_fn and /_fn/*. /_fn/health is never refused: it only learns whether the
--                         caller is trusted (ngx.ctx.fastfn_trusted) so the endpoint can decide how much to say.
--   ui()                  access_by_lua of /console and /console/*.
--   ui_unavailable()      content of /console*: this build has no console UI.
--
-- The decision itself is `decide(kind, req, settings, store)`: pure (no ngx), unit-tested with busted. It judges
-- ngx.var.uri's world only through what the glue hands it (method, request headers, TCP peer) and keeps its counters
-- in an injected store. Refusal order, first match wins (kind "ui" skips b and g, "health" refuses nothing):
--   a  ui:  ui_enabled off                                 404 console ui disabled
--   b  api: console_api_enabled off                        404 console api disabled
--           admin_api_enabled off                          404 admin api disabled
--   c  Host (from a trusted proxy: X-Forwarded-Host) not loopback and not in allowed_hosts
--                                                          403 host not allowed
--   d  token configured and x-fn-admin-token sent:
--           failed attempts of this client >= auth_fail_max 429 too many failed admin token attempts, try again later
--           wrong (or sent twice)                          401 invalid admin token   (counts a failed attempt)
--   e  not authenticated: mode run                         401 admin token required
--                         dev, local_only, caller not local 403 console api local-only (ui: console ui local-only)
--   f  requests of this client in the window > read_max (GET/HEAD) or write_max (other methods)
--                                                          429 too many console requests, try again later
--   g  api: any Upgrade header; and for methods other than GET/HEAD/OPTIONS: Origin null or not the request's
--      host[:port], Sec-Fetch-Mode no-cors, Sec-Fetch-Site cross-site
--                                                          403 cross-origin request refused
--      writes without the token: X-Fn-Request not "1"      403 missing CSRF header
--                                write_enabled off         403 console write disabled
--                                local_only, not local     403 console write local-only
--
-- Who the client is: the TCP peer; when the peer is in trusted_proxy_cidrs, the right-most X-Forwarded-For entry that
-- is not itself a trusted proxy. From any other peer, X-Forwarded-For, Forwarded, X-Forwarded-Host or X-Real-IP void
-- local trust. Local: the client is 127.0.0.1 or ::1 (not 127.0.0.2, not ::ffff:127.0.0.1), or in trusted_cidrs.

local ngx = ngx   -- nil under busted: only compile() and decide() are used there
local cidr = require "fastfn.cidr"
local shape = require "fastfn.shape"

local byte = string.byte
local char = string.char
local find = string.find
local sub = string.sub
local gsub = string.gsub
local lower = string.lower
local concat = table.concat
local ceil = math.ceil
local type = type
local tostring = tostring
local tonumber = tonumber
local pairs = pairs
local next = next
local contains = cidr.contains

local _M = { _VERSION = "0.1.0" }

local API, UI, HEALTH = "api", "ui", "health"
_M.API, _M.UI, _M.HEALTH = API, UI, HEALTH

local CROSS = "cross-origin request refused"
local LOCKED = "too many failed admin token attempts, try again later"
local LIMITED = "too many console requests, try again later"

local COMMA, SPACE, TAB, LBRACKET, COLON = byte(","), byte(" "), byte("\t"), byte("["), byte(":")

local LOOPBACK = assert(cidr.new({ "127.0.0.1/32", "::1/128" }))
local LOOPBACK_HOSTS = { ["localhost"] = true, ["127.0.0.1"] = true, ["::1"] = true, ["[::1]"] = true }

-- Constant-time equality of two 20-byte strings: OR of the XORs, no early exit.
local bxor, bor
do
    local ok, bit = pcall(require, "bit")          -- LuaJIT
    if not ok then
        ok, bit = pcall(require, "bit32")          -- PUC Lua 5.2 (busted)
    end
    if ok then
        bxor, bor = bit.bxor, bit.bor
    end
end

local function equal20(a, b)
    local acc = 0
    if bxor then
        for i = 1, 20 do
            acc = bor(acc, bxor(byte(a, i), byte(b, i)))
        end
    else
        for i = 1, 20 do
            local d = byte(a, i) - byte(b, i)
            acc = acc + d * d
        end
    end
    return acc == 0
end

------------------------------------------------------------------------------------------------------------------------
-- Settings

local is_array = shape.is_array

local is_int = shape.is_int

local function from_hex(h)
    return (gsub(h, "%x%x", function(pair)
        return char(tonumber(pair, 16))
    end))
end

local BOOLS = { "console_api_enabled", "admin_api_enabled", "ui_enabled", "write_enabled", "local_only" }

--- Validates and compiles the settings file's "guard" object. mode: "dev" or "run"; hmac(key, msg) returns the raw
-- 20-byte HMAC-SHA1 (ngx.hmac_sha1). Returns the compiled settings, or nil and "guard.<field> …".
function _M.compile(raw, mode, hmac)
    if type(raw) ~= "table" or is_array(raw) and next(raw) ~= nil then
        return nil, "guard must be an object"
    end
    if mode ~= "dev" and mode ~= "run" then
        return nil, "mode must be \"dev\" or \"run\""
    end
    if type(hmac) ~= "function" then
        return nil, "guard needs an HMAC-SHA1 function"
    end
    local s = { mode = mode, run = mode == "run", hmac = hmac }
    for _, k in pairs(BOOLS) do
        if type(raw[k]) ~= "boolean" then
            return nil, "guard." .. k .. " must be a boolean"
        end
    end
    s.api_enabled = raw.console_api_enabled
    s.admin_enabled = raw.admin_api_enabled
    s.ui_enabled = raw.ui_enabled
    s.write_enabled = raw.write_enabled
    s.local_only = raw.local_only

    local token = raw.token
    if token ~= nil and type(token) ~= "table" then       -- JSON null is a userdata: no token
        if type(token) ~= "userdata" then
            return nil, "guard.token must be null or an object"
        end
        token = nil
    end
    if token then
        local key, mac = token.key_hex, token.mac_hex
        if type(key) ~= "string" or not find(key, "^" .. ("%x"):rep(64) .. "$") then
            return nil, "guard.token.key_hex must be 64 hex digits"
        end
        if type(mac) ~= "string" or not find(mac, "^" .. ("%x"):rep(40) .. "$") then
            return nil, "guard.token.mac_hex must be 40 hex digits"
        end
        s.token_key = from_hex(key)
        s.token_mac = from_hex(mac)
    end

    for _, k in pairs({ "trusted_cidrs", "trusted_proxy_cidrs" }) do
        local list = raw[k]
        if not is_array(list) then
            return nil, "guard." .. k .. " must be an array of CIDR strings"
        end
        local set, err = cidr.new(list)
        if not set then
            return nil, "guard." .. k .. ": " .. err
        end
        s[k == "trusted_cidrs" and "trusted" or "proxies"] = set
    end
    s.any_proxy = s.proxies.n4 + s.proxies.n6 > 0

    local hosts = raw.allowed_hosts
    if not is_array(hosts) then
        return nil, "guard.allowed_hosts must be an array of host names"
    end
    s.hosts = {}
    for i = 1, #hosts do
        local h = hosts[i]
        if type(h) ~= "string" or h == "" or find(h, "[%s/@?#,]") then
            return nil, "guard.allowed_hosts[" .. (i - 1) .. "] must be a host name"
        end
        h = lower(h)
        local bracketed = byte(h, 1) == LBRACKET
        local _, colons = gsub(h, ":", "")
        if not bracketed and colons == 1 then
            return nil, "guard.allowed_hosts[" .. (i - 1) .. "] must be a host name without a port"
        end
        s.hosts[h] = true
        if colons > 1 and not bracketed then               -- a bare IPv6 address: the Host header brackets it
            s.hosts["[" .. h .. "]"] = true
        end
    end

    local rl = raw.rate_limit
    if type(rl) ~= "table" then
        return nil, "guard.rate_limit must be an object"
    end
    for _, k in pairs({ "window_s", "read_max", "write_max", "auth_fail_max", "auth_fail_window_s" }) do
        if not is_int(rl[k]) then
            return nil, "guard.rate_limit." .. k .. " must be an integer (0 or less: no limit)"
        end
    end
    -- A window of 0 turns its limit off (a counter without a TTL would never expire).
    s.window = rl.window_s
    s.read_max = rl.window_s > 0 and rl.read_max or 0
    s.write_max = rl.window_s > 0 and rl.write_max or 0
    s.fail_window = rl.auth_fail_window_s
    s.fail_max = rl.auth_fail_window_s > 0 and rl.auth_fail_max or 0
    return s
end

------------------------------------------------------------------------------------------------------------------------
-- The decision

-- Bounds of the last non-empty element of a comma-separated header value, spaces trimmed; nil when there is none.
-- The last non-empty element of a comma-separated list that ends at or before position j (HTTP lists allow empty
-- elements and optional whitespace): its bounds a, b and where the search for the previous element continues; nil
-- when there is none.
local function element_before(v, j)
    while j >= 1 do
        local c = j
        while c >= 1 and byte(v, c) ~= COMMA do
            c = c - 1
        end
        local a, b = c + 1, j
        while a <= b and (byte(v, a) == SPACE or byte(v, a) == TAB) do
            a = a + 1
        end
        while b >= a and (byte(v, b) == SPACE or byte(v, b) == TAB) do
            b = b - 1
        end
        if a <= b then
            return a, b, c - 1
        end
        j = c - 1
    end
    return nil
end

local function last_element(v)
    local a, b = element_before(v, #v)
    return a, b
end

local function joined(v)
    if type(v) == "table" then
        return concat(v, ",")
    end
    return v
end

-- The client address behind a trusted proxy: the right-most X-Forwarded-For element that is not a trusted proxy
-- (empty elements are skipped, as HTTP lists allow); the peer when there is none.
local function forwarded_client(s, xff, peer)
    if xff == nil then
        return peer
    end
    xff = joined(xff)
    local a, b, j = element_before(xff, #xff)
    while a do
        if not contains(s.proxies, xff, a, b) then
            return sub(xff, a, b)
        end
        a, b, j = element_before(xff, j)
    end
    return peer
end

-- Whether a Host value (name[:port], [v6][:port]) names this server: loopback or an allowed host.
local function host_allowed(s, host)
    if type(host) ~= "string" or host == "" then
        return false
    end
    local name = host
    if byte(host, 1) == LBRACKET then
        local close = find(host, "]", 2, true)
        if not close then
            return false
        end
        if close < #host then
            if byte(host, close + 1) ~= COLON then
                return false
            end
            name = sub(host, 1, close)
        end
    else
        local colon = find(host, ":", 1, true)
        if colon and not find(host, ":", colon + 1, true) then   -- several colons: a bare IPv6 address
            name = sub(host, 1, colon - 1)
        end
    end
    name = lower(name)
    return LOOPBACK_HOSTS[name] or s.hosts[name] or false
end

-- Whether an Origin header value is scheme://<host> for the request's host[:port].
local function same_origin(origin, host)
    if type(origin) ~= "string" then
        return false
    end
    local p = find(origin, "://", 1, true)
    if not p then                       -- includes "null"
        return false
    end
    local hp = sub(origin, p + 3)
    if hp == "" or find(hp, "[/?#@%s]") then
        return false
    end
    return lower(hp) == lower(host)
end

local function token_ok(s, presented)
    local mac = s.hmac(s.token_key, presented)
    return type(mac) == "string" and #mac == 20 and equal20(mac, s.token_mac)
end

local function seconds_left(store, key, default)
    local t = store.ttl(key)
    if type(t) ~= "number" or t <= 0 then
        t = default
    end
    t = ceil(t)
    return t < 1 and 1 or t
end

--- The guard's decision for one request.
--   kind      API, UI or HEALTH
--   req       { method = "GET", headers = { [lower-case name] = string or { string, … } }, peer = "127.0.0.1" }
--   s         compile()'s result
--   store     { get(key) -> number|nil, incr(key, ttl_s) -> new number|nil, ttl(key) -> seconds left|nil }
-- Returns status, message, retry_after (seconds or nil) for a refusal; or nil, nil, nil, trusted, authenticated,
-- client when the request may go on (for HEALTH always, trusted telling whether the caller passed b–e).
local function decide(kind, req, s, store)
    local h = req.headers
    local health = kind == HEALTH

    -- a, b
    if kind == UI then
        if not s.ui_enabled then
            return 404, "console ui disabled"
        end
    else
        if not s.api_enabled then
            if health then
                return nil, nil, nil, false, false
            end
            return 404, "console api disabled"
        end
        if not s.admin_enabled then
            if health then
                return nil, nil, nil, false, false
            end
            return 404, "admin api disabled"
        end
    end

    -- c. The host the client asked for: Host, or X-Forwarded-Host when a trusted proxy sent it.
    local peer = req.peer
    local from_proxy = s.any_proxy and contains(s.proxies, peer)
    local host = h.host
    if from_proxy then
        local xfh = h["x-forwarded-host"]
        if xfh ~= nil then
            xfh = joined(xfh)
            local a, b = last_element(xfh)
            host = a and sub(xfh, a, b) or ""
        end
    end
    if not host_allowed(s, host) then
        if health then
            return nil, nil, nil, false, false
        end
        return 403, "host not allowed"
    end

    local client, forwarded
    if from_proxy then
        client, forwarded = forwarded_client(s, h["x-forwarded-for"], peer), false
    else
        client = peer
        forwarded = h["x-forwarded-for"] ~= nil or h["forwarded"] ~= nil or h["x-forwarded-host"] ~= nil
            or h["x-real-ip"] ~= nil
    end
    if type(client) ~= "string" then
        client = ""
    end

    -- d. The admin token (only when one is configured).
    local authenticated = false
    local presented = s.token_key and h["x-fn-admin-token"]
    if presented ~= nil then
        local key = "authfail:" .. client
        if s.fail_max > 0 and (store.get(key) or 0) >= s.fail_max then
            if health then
                return nil, nil, nil, false, false, client
            end
            return 429, LOCKED, seconds_left(store, key, s.fail_window)
        end
        if type(presented) == "string" and token_ok(s, presented) then
            authenticated = true
        else
            if s.fail_max > 0 then
                store.incr(key, s.fail_window)
            end
            if health then
                return nil, nil, nil, false, false, client
            end
            return 401, "invalid admin token"
        end
    end

    -- e. Who may come in without the token.
    local is_local = not forwarded and (contains(LOOPBACK, client) or contains(s.trusted, client))
    if not authenticated then
        if s.run then
            if health then
                return nil, nil, nil, false, false, client
            end
            return 401, "admin token required"
        end
        if s.local_only and not is_local then
            if health then
                return nil, nil, nil, false, false, client
            end
            return 403, kind == UI and "console ui local-only" or "console api local-only"
        end
    end
    if health then
        return nil, nil, nil, true, authenticated, client
    end

    -- f. Rate limit: one fixed-window counter per client and scope, the limit depends on the method.
    local method = req.method
    local read = method == "GET" or method == "HEAD"
    local max = read and s.read_max or s.write_max
    if max > 0 then
        local key = (kind == UI and "rl:ui:" or "rl:api:") .. client
        local n = store.incr(key, s.window)
        if n and n > max then
            return 429, LIMITED, seconds_left(store, key, s.window)
        end
    end

    -- g. Cross-origin and write checks (the API only: the console has no content here).
    if kind == API then
        if h.upgrade ~= nil then
            return 403, CROSS
        end
        if not read and method ~= "OPTIONS" then
            local origin = h.origin
            if origin ~= nil and not same_origin(origin, host) then
                return 403, CROSS
            end
            local fetch_mode, fetch_site = h["sec-fetch-mode"], h["sec-fetch-site"]
            if fetch_mode ~= nil and (type(fetch_mode) ~= "string" or lower(fetch_mode) == "no-cors") then
                return 403, CROSS
            end
            if fetch_site ~= nil and (type(fetch_site) ~= "string" or lower(fetch_site) == "cross-site") then
                return 403, CROSS
            end
            if not authenticated then
                if h["x-fn-request"] ~= "1" then
                    return 403, "missing CSRF header"
                end
                if not s.write_enabled then
                    return 403, "console write disabled"
                end
                if s.local_only and not is_local then       -- e refuses this first today; kept as the write rule
                    return 403, "console write local-only"
                end
            end
        end
    end
    return nil, nil, nil, true, authenticated, client
end
_M.decide = decide

-- Exposed for tests.
_M.host_allowed = host_allowed
_M.same_origin = same_origin
_M.forwarded_client = forwarded_client

------------------------------------------------------------------------------------------------------------------------
-- nginx glue

local settings      -- compile()'s result, set in init_by_lua and inherited by the workers

if ngx then
    local response = require "fastfn.response"
    local var = ngx.var
    local get_method = ngx.req.get_method
    local get_headers = ngx.req.get_headers
    local discard_body = ngx.req.discard_body
    local exit = ngx.exit
    local log = ngx.log
    local WARN = ngx.WARN

    local dict
    local store = {
        get = function(key)
            return dict:get(key)
        end,
        incr = function(key, ttl)
            local n, err = dict:incr(key, 1, 0, ttl)
            if not n then
                log(WARN, "fastfn: guard counter ", key, " not updated: ", err)
            end
            return n
        end,
        ttl = function(key)
            return (dict:ttl(key))
        end,
    }

    -- Reused per request: the guard never yields, so one table per worker is enough.
    local request = {}
    local retry_headers = { ["Retry-After"] = 0 }

    --- init_by_lua: compiles the "guard" object of the settings file. Returns true, or nil and a message.
    function _M.configure(raw, mode)
        local s, err = _M.compile(raw, mode, ngx.hmac_sha1)
        if not s then
            return nil, err
        end
        dict = ngx.shared.fastfn_guard
        if not dict then
            return nil, "nginx.conf has no `lua_shared_dict fastfn_guard`"
        end
        settings = s
        return true
    end

    --- The Host a function route judges (invoke.allow_hosts): X-Forwarded-Host (its last element) when the peer is a
    -- trusted proxy, else the Host header. Upstream believed X-Forwarded-Host from anyone.
    function _M.request_host()
        local peer = var.remote_addr
        if settings and settings.any_proxy and peer and contains(settings.proxies, peer) then
            local xfh = var.http_x_forwarded_host
            if xfh and xfh ~= "" then
                local a, b = last_element(xfh)
                if a then
                    return sub(xfh, a, b)
                end
            end
        end
        return var.http_host
    end

    local function run(kind)
        request.method = get_method()
        request.headers = get_headers(0)
        request.peer = var.remote_addr
        local status, msg, retry, trusted, authenticated = decide(kind, request, settings, store)
        request.headers = nil
        if status then
            discard_body()
            local extra
            if retry then
                retry_headers["Retry-After"] = tostring(retry)
                extra = retry_headers
            end
            response.error(status, msg, extra)
            return exit(status)
        end
        local ctx = ngx.ctx
        ctx.fastfn_trusted = trusted
        ctx.fastfn_authenticated = authenticated
    end

    --- access_by_lua of /_fn and /_fn/*.
    function _M.api()
        return run(var.uri == "/_fn/health" and HEALTH or API)
    end

    --- access_by_lua of /console and /console/*.
    function _M.ui()
        return run(UI)
    end

    --- content_by_lua of /console and /console/*.
    function _M.ui_unavailable()
        discard_body()
        return response.error(501, "the console UI is not part of this build")
    end
end

return _M
