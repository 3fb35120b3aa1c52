-- IPv4/IPv6 CIDR sets, parsed once and matched against address strings. Pure Lua (no ngx), so busted runs it.
--
--   local set, err = cidr.new({ "10.1.0.0/16", "::1/128", "192.0.2.7" })   -- nil, "…" on the first bad entry
--   cidr.contains(set, "10.1.2.3")            -- true
--   cidr.contains(set, s, i, j)               -- the address is s:sub(i, j); nothing is allocated
--
-- An entry without "/len" is one address (/32 or /128). Host bits beyond the prefix are ignored ("10.1.2.3/16" is
-- 10.1.0.0/16). Addresses are strict: dotted-quad IPv4 without leading zeros, RFC 4291 IPv6 text (with "::" and an
-- embedded dotted quad), no zone index, no brackets, no port. The families never mix: "::ffff:127.0.0.1" is an IPv6
-- address and matches only IPv6 entries (e.g. "::ffff:0:0/96"), never "127.0.0.1/32". A string that is not an address
-- matches nothing.
--
-- Only arithmetic is used (no bit library), so the same code runs under LuaJIT and PUC Lua 5.1–5.4.

local byte = string.byte
local find = string.find
local sub = string.sub
local floor = math.floor
local type = type
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable

local _M = { _VERSION = "0.1.0" }

local DOT, COLON = byte("."), byte(":")
local ZERO, NINE = byte("0"), byte("9")
local LA, LF, UA, UF = byte("a"), byte("f"), byte("A"), byte("F")

-- s[i..j] as a dotted-quad IPv4 address: a number in 0 .. 2^32-1, or nil.
local function parse_v4(s, i, j)
    local n, octet, digits, dots = 0, 0, 0, 0
    for k = i, j do
        local c = byte(s, k)
        if c >= ZERO and c <= NINE then
            if digits > 0 and octet == 0 then   -- a leading zero ("01"): octal in some parsers, refused
                return nil
            end
            octet = octet * 10 + (c - ZERO)
            digits = digits + 1
            if octet > 255 then
                return nil
            end
        elseif c == DOT then
            if digits == 0 or dots == 3 then
                return nil
            end
            n = n * 256 + octet
            octet, digits, dots = 0, 0, dots + 1
        else
            return nil
        end
    end
    if dots ~= 3 or digits == 0 then
        return nil
    end
    return n * 256 + octet
end

local function hex_digit(c)
    if c >= ZERO and c <= NINE then
        return c - ZERO
    elseif c >= LA and c <= LF then
        return c - LA + 10
    elseif c >= UA and c <= UF then
        return c - UA + 10
    end
    return nil
end

-- s[i..j] as IPv6 text into out[1..8] (16-bit groups). Returns true, or false when it is not an address.
local function parse_v6(s, i, j, out)
    if j - i < 1 then
        return false
    end
    local n = 0         -- groups written
    local gap = nil     -- groups written before "::"
    local k = i
    if byte(s, k) == COLON then
        if byte(s, k + 1) ~= COLON then
            return false
        end
        gap = 0
        k = k + 2
    end
    while k <= j do
        local start, v, nd = k, 0, 0
        while k <= j do
            local d = hex_digit(byte(s, k))
            if not d then
                break
            end
            nd = nd + 1
            if nd > 4 then
                return false
            end
            v = v * 16 + d
            k = k + 1
        end
        if k <= j and byte(s, k) == DOT then
            -- An embedded dotted quad: the last 32 bits.
            if n > 6 then
                return false
            end
            local v4 = parse_v4(s, start, j)
            if not v4 then
                return false
            end
            out[n + 1] = floor(v4 / 65536)
            out[n + 2] = v4 % 65536
            n = n + 2
            break
        end
        if nd == 0 or n == 8 then
            return false
        end
        n = n + 1
        out[n] = v
        if k > j then
            break
        end
        if byte(s, k) ~= COLON then
            return false
        end
        k = k + 1
        if k > j then               -- a trailing single ":"
            return false
        end
        if byte(s, k) == COLON then
            if gap then             -- a second "::"
                return false
            end
            gap = n
            k = k + 1
        end
    end
    if gap then
        if n > 7 then               -- "::" stands for at least one group
            return false
        end
        local tail = n - gap
        for x = 0, tail - 1 do
            out[8 - x] = out[n - x]
        end
        for x = gap + 1, 8 - tail do
            out[x] = 0
        end
    elseif n ~= 8 then
        return false
    end
    return true
end

local scratch = { 0, 0, 0, 0, 0, 0, 0, 0 }

--- Parses one entry ("addr" or "addr/len"). Returns { v4 = true, div, q } or { v6 = true, full = {…}, nfull, pdiv,
-- pq }, or nil and a reason.
function _M.parse(text)
    if type(text) ~= "string" or text == "" then
        return nil, "not a string"
    end
    local slash = find(text, "/", 1, true)
    local last = slash and slash - 1 or #text
    local len
    if slash then
        local digits = sub(text, slash + 1)
        if not find(digits, "^%d+$") or (#digits > 1 and byte(digits, 1) == ZERO) or #digits > 3 then
            return nil, "the prefix length is not a number"
        end
        len = tonumber(digits)
    end
    if find(text, ":", 1, true) then
        if not parse_v6(text, 1, last, scratch) then
            return nil, "not an IPv6 address"
        end
        len = len or 128
        if len > 128 then
            return nil, "the prefix length is more than 128"
        end
        local e = { v6 = true, full = {}, nfull = floor(len / 16) }
        for g = 1, e.nfull do
            e.full[g] = scratch[g]
        end
        local rest = len % 16
        if rest > 0 then
            e.pdiv = 2 ^ (16 - rest)
            e.pq = floor(scratch[e.nfull + 1] / e.pdiv)
        end
        return e
    end
    local a = parse_v4(text, 1, last)
    if not a then
        return nil, "not an IPv4 address"
    end
    len = len or 32
    if len > 32 then
        return nil, "the prefix length is more than 32"
    end
    local div = 2 ^ (32 - len)
    return { v4 = true, div = div, q = floor(a / div) }
end

local set_mt = { __index = _M }

--- A set from a list of entries. Returns the set, or nil and "entry <n> (<text>): <reason>" for the first bad one.
function _M.new(list)
    if type(list) ~= "table" then
        return nil, "not a list"
    end
    local set = setmetatable({ v4 = {}, v6 = {}, n4 = 0, n6 = 0 }, set_mt)
    for i = 1, #list do
        local e, err = _M.parse(list[i])
        if not e then
            return nil, "entry " .. i .. " (" .. tostring(list[i]) .. "): " .. err
        end
        if e.v4 then
            set.n4 = set.n4 + 1
            set.v4[set.n4] = e
        else
            set.n6 = set.n6 + 1
            set.v6[set.n6] = e
        end
    end
    return set
end

--- Whether the address s (or s:sub(i, j)) is inside one of the set's entries.
function _M.contains(set, s, i, j)
    if type(s) ~= "string" then
        return false
    end
    i = i or 1
    j = j or #s
    if j < i then
        return false
    end
    local colon = find(s, ":", i, true)
    if colon and colon <= j then
        if set.n6 == 0 or not parse_v6(s, i, j, scratch) then
            return false
        end
        local v6 = set.v6
        for x = 1, set.n6 do
            local e = v6[x]
            local full, ok = e.full, true
            for g = 1, e.nfull do
                if scratch[g] ~= full[g] then
                    ok = false
                    break
                end
            end
            if ok and (not e.pdiv or floor(scratch[e.nfull + 1] / e.pdiv) == e.pq) then
                return true
            end
        end
        return false
    end
    if set.n4 == 0 then
        return false
    end
    local a = parse_v4(s, i, j)
    if not a then
        return false
    end
    local v4 = set.v4
    for x = 1, set.n4 do
        local e = v4[x]
        if floor(a / e.div) == e.q then
            return true
        end
    end
    return false
end

--- Whether s (or s:sub(i, j)) is an IP address at all (either family).
function _M.is_address(s, i, j)
    if type(s) ~= "string" then
        return false
    end
    i = i or 1
    j = j or #s
    if j < i then
        return false
    end
    local colon = find(s, ":", i, true)
    if colon and colon <= j then
        return parse_v6(s, i, j, scratch)
    end
    return parse_v4(s, i, j) ~= nil
end

return _M
