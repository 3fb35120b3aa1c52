-- invoke.allow_hosts: which Host values may reach a function (contract.md §2, control-plane.md §7.2). Pure Lua.
--   "api.example.com"    that host, any port
--   "*.example.com"      any subdomain, not the apex
--   "api.example.com:8443" that exact host:port
-- Entries are lower-case (the supervisor normalises them); matching lower-cases the request's host once.

local find = string.find
local sub = string.sub
local lower = string.lower
local byte = string.byte

local _M = { _VERSION = "0.1.0" }

local LBRACKET = byte("[")

--- Compiles a list of entries into lookup tables.
function _M.compile(entries)
    local m = { exact = {}, authority = {}, suffixes = {} }
    for i = 1, #entries do
        local e = lower(entries[i])
        if sub(e, 1, 2) == "*." then
            m.suffixes[#m.suffixes + 1] = sub(e, 2)          -- ".example.com"
        elseif byte(e, 1) ~= LBRACKET and find(e, ":", 1, true) then
            m.authority[e] = true
        elseif byte(e, 1) == LBRACKET and find(e, "]:", 1, true) then
            m.authority[e] = true
        else
            m.exact[e] = true
        end
    end
    return m
end

-- Splits "host[:port]" / "[v6][:port]" into the host part.
local function host_part(authority)
    if byte(authority, 1) == LBRACKET then
        local close = find(authority, "]", 2, true)
        return close and sub(authority, 1, close) or authority
    end
    local colon = find(authority, ":", 1, true)
    if colon and not find(authority, ":", colon + 1, true) then
        return sub(authority, 1, colon - 1)
    end
    return authority
end

--- Whether `authority` (a Host header value) is allowed by the compiled matcher m.
function _M.allows(m, authority)
    if type(authority) ~= "string" or authority == "" then
        return false
    end
    authority = lower(authority)
    if m.authority[authority] then
        return true
    end
    local host = host_part(authority)
    if m.exact[host] then
        return true
    end
    local suffixes = m.suffixes
    for i = 1, #suffixes do
        local suffix = suffixes[i]
        local hl, sl = #host, #suffix
        if hl > sl and sub(host, hl - sl + 1) == suffix then
            return true
        end
    end
    return false
end

return _M
