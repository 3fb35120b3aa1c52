-- Route matching against the catalog's routes (docs/catalog.md). Pure Lua: it must not touch `ngx`, so that busted can
-- run it under plain Lua/LuaJIT. Everything that can be decided once (pattern splitting, method sets, Allow strings,
-- where conflicts rank) is decided in `new`; `match` splits the request path once and walks prepared tables.

local byte = string.byte
local find = string.find
local sub = string.sub
local gsub = string.gsub
local lower = string.lower
local upper = string.upper
local concat = table.concat
local sort = table.sort
local type = type
local pairs = pairs
local setmetatable = setmetatable
local tostring = tostring
local insert = table.insert

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local SLASH = byte("/")
local COLON = byte(":")
local STAR = byte("*")

-- Allow header order: the function methods first, then anything else alphabetically, then OPTIONS. HEAD follows
-- GET: the gateway answers HEAD wherever GET is allowed, and OPTIONS on every path that exists.
local METHOD_RANK = { GET = 1, HEAD = 2, POST = 3, PUT = 4, PATCH = 5, DELETE = 6, OPTIONS = 8 }

local function method_before(a, b)
    local ra, rb = METHOD_RANK[a] or 7, METHOD_RANK[b] or 7
    if ra ~= rb then
        return ra < rb
    end
    return a < b
end

local function allow_string(set)
    local list, n = {}, 0
    for m in pairs(set) do
        if m ~= "HEAD" and m ~= "OPTIONS" then
            n = n + 1
            list[n] = m
        end
    end
    if set.GET then
        n = n + 1
        list[n] = "HEAD"
    end
    list[n + 1] = "OPTIONS"
    sort(list, method_before)
    return concat(list, ", ")
end
_M.allow_string = allow_string

-- Normalises a request path (ngx.var.uri: already percent-decoded): collapses repeated slashes and drops a trailing
-- slash. Returns nil for a path that can match nothing: not absolute, or with a `..` segment.
function _M.normalize(path)
    if type(path) ~= "string" or byte(path, 1) ~= SLASH then
        return nil
    end
    if find(path, "//", 1, true) then
        path = gsub(path, "//+", "/")
    end
    local len = #path
    if len > 1 and byte(path, len) == SLASH then
        path = sub(path, 1, len - 1)
    end
    if find(path, "..", 1, true) then
        local pos = 2
        len = #path
        while pos <= len do
            local slash = find(path, "/", pos, true)
            local last = slash and slash - 1 or len
            if last - pos == 1 and sub(path, pos, last) == ".." then
                return nil
            end
            pos = last + 2
        end
    end
    return path
end

-- Splits a catalog pattern into a prepared form:
--   { path, n = segment count, static = {seg or false}, names = {param name or nil}, catch = last is `:name*`,
--     nstatic, nsingle }
-- Returns nil and a message when the pattern is not a normalised catalog pattern.
local function parse_pattern(path)
    if type(path) ~= "string" or byte(path, 1) ~= SLASH then
        return nil, "pattern must start with /"
    end
    local p = { path = path, n = 0, static = {}, names = {}, catch = false, nstatic = 0, nsingle = 0 }
    local len = #path
    if len == 1 then
        return p
    end
    if byte(path, len) == SLASH then
        return nil, "pattern must not end with /"
    end
    local pos = 2
    while pos <= len do
        local slash = find(path, "/", pos, true)
        local last = slash and slash - 1 or len
        if last < pos then
            return nil, "pattern has an empty segment"
        end
        if p.catch then
            return nil, "a catch-all :name* must be the last segment"
        end
        local seg = sub(path, pos, last)
        local n = p.n + 1
        p.n = n
        if seg == "." or seg == ".." then
            return nil, "pattern has a dot segment"
        end
        if byte(seg, 1) == COLON then
            local name = sub(seg, 2)
            if byte(name, -1) == STAR then
                name = sub(name, 1, -2)
                p.catch = true
            else
                p.nsingle = p.nsingle + 1
            end
            if name == "" or find(name, "[:*]") then
                return nil, "bad parameter segment " .. seg
            end
            p.static[n] = false
            p.names[n] = lower(name)
        else
            if find(seg, "*", 1, true) then
                return nil, "bad segment " .. seg .. " (a catch-all is written :name*)"
            end
            p.static[n] = seg
            p.nstatic = p.nstatic + 1
        end
        pos = last + 2
    end
    return p
end
_M.parse_pattern = parse_pattern

-- The catalog's order for dynamic routes: more static segments, more segments, fewer catch-alls, more single params,
-- then the path. True when pattern a ranks strictly before pattern b.
local function ranks_before(a, b)
    if a.nstatic ~= b.nstatic then
        return a.nstatic > b.nstatic
    end
    if a.n ~= b.n then
        return a.n > b.n
    end
    local ca, cb = a.catch and 1 or 0, b.catch and 1 or 0
    if ca ~= cb then
        return ca < cb
    end
    if a.nsingle ~= b.nsingle then
        return a.nsingle > b.nsingle
    end
    return a.path < b.path
end
_M.ranks_before = ranks_before

local function method_set(methods)
    if type(methods) ~= "table" or #methods == 0 then
        return nil, "methods must be a non-empty array"
    end
    local set = {}
    for i = 1, #methods do
        local m = methods[i]
        if type(m) ~= "string" or m == "" then
            return nil, "methods must be strings"
        end
        set[upper(m)] = true
    end
    return set
end

local function add_methods(into, set)
    for m in pairs(set) do
        into[m] = true
    end
end

--- Builds a router.
-- routes: array, in match order, of { path, methods = {"GET", …}, dynamic = bool, fn = <anything> } (`fn` falls back
-- to the catalog field `function`); conflicts: array of patterns. Returns the router, or nil and an error.
function _M.new(routes, conflicts)
    if type(routes) ~= "table" then
        return nil, "routes must be an array"
    end
    local exact = {}       -- path -> { conflict = bool, routes = { {methods, fn} … }, methods = set, allow = "…" }
    local dynamic = {}     -- groups of consecutive routes on one pattern, in match order
    local ndyn = 0

    for i = 1, #routes do
        local r = routes[i]
        if type(r) ~= "table" then
            return nil, "route " .. i .. " is not an object"
        end
        local set, err = method_set(r.methods)
        if not set then
            return nil, "route " .. i .. ": " .. err
        end
        local fn = r.fn
        if fn == nil then
            fn = r["function"]
        end
        local entry = { methods = set, fn = fn }
        local p
        p, err = parse_pattern(r.path)
        if not p then
            return nil, "route " .. i .. " (" .. tostring(r.path) .. "): " .. err
        end
        if r.dynamic then
            local g = dynamic[ndyn]
            if g and g.path == p.path then
                g.routes[#g.routes + 1] = entry
                add_methods(g.methods, set)
            else
                p.routes = { entry }
                p.methods = {}
                p.conflict = false
                add_methods(p.methods, set)
                ndyn = ndyn + 1
                dynamic[ndyn] = p
            end
        else
            local e = exact[p.path]
            if not e then
                e = { conflict = false, routes = {}, methods = {} }
                exact[p.path] = e
            end
            e.routes[#e.routes + 1] = entry
            add_methods(e.methods, set)
        end
    end

    if conflicts ~= nil and type(conflicts) ~= "table" then
        return nil, "conflicts must be an array"
    end
    for i = 1, conflicts and #conflicts or 0 do
        local p, err = parse_pattern(conflicts[i])
        if not p then
            return nil, "conflict " .. i .. " (" .. tostring(conflicts[i]) .. "): " .. err
        end
        if p.nsingle == 0 and not p.catch then
            local e = exact[p.path]
            if not e then
                e = { routes = {}, methods = {} }
                exact[p.path] = e
            end
            e.conflict = true
        else
            -- A conflicted pattern answers 409 at its own rank: more specific routes still win before it.
            p.routes, p.methods, p.conflict = {}, {}, true
            local at = ndyn + 1
            for j = 1, ndyn do
                local g = dynamic[j]
                if g.path == p.path or ranks_before(p, g) then
                    at = j
                    break
                end
            end
            insert(dynamic, at, p)
            ndyn = ndyn + 1
        end
    end

    for _, e in pairs(exact) do
        e.allow = allow_string(e.methods)
    end

    return setmetatable({ exact = exact, dynamic = dynamic, ndyn = ndyn }, mt)
end

-- Scratch space for the request path's segments. `match` never yields, so one set per Lua VM (nginx worker) is safe.
local segs, starts = {}, {}

--- Matches a normalised path and an upper-case method.
-- Returns fn, params (a fresh table, {} for an exact route); or nil, "conflict"; or nil, "method", allow (the
-- ", "-joined methods of every pattern that matched the path); or nil when no pattern matches.
function _M.match(self, path, method)
    local allow_set
    local e = self.exact[path]
    if e then
        if e.conflict then
            return nil, "conflict"
        end
        local rs = e.routes
        for i = 1, #rs do
            local r = rs[i]
            if r.methods[method] then
                return r.fn, {}
            end
        end
        if self.ndyn == 0 then
            return nil, "method", e.allow
        end
        allow_set = {}
        add_methods(allow_set, e.methods)
    end

    local ndyn = self.ndyn
    if ndyn == 0 then
        return nil
    end

    -- Split once: "/a/bc" -> segs {"a", "bc"}, starts {2, 4}.
    local n, pos, len = 0, 2, #path
    while pos <= len do
        local slash = find(path, "/", pos, true)
        local last = slash and slash - 1 or len
        n = n + 1
        starts[n] = pos
        segs[n] = sub(path, pos, last)
        pos = last + 2
    end

    local dynamic = self.dynamic
    for i = 1, ndyn do
        local g = dynamic[i]
        local gn = g.n
        if n == gn or (g.catch and n > gn) then
            local static = g.static
            local ok = true
            for j = 1, gn do
                local s = static[j]
                if s then
                    if s ~= segs[j] then
                        ok = false
                        break
                    end
                elseif segs[j] == "" then
                    ok = false
                    break
                end
            end
            if ok then
                if g.conflict then
                    return nil, "conflict"
                end
                local rs = g.routes
                for k = 1, #rs do
                    local r = rs[k]
                    if r.methods[method] then
                        local params, names = {}, g.names
                        for j = 1, gn do
                            local name = names[j]
                            if name then
                                params[name] = segs[j]
                            end
                        end
                        if g.catch then
                            params[names[gn]] = sub(path, starts[gn])
                        end
                        return r.fn, params
                    end
                end
                if not allow_set then
                    allow_set = {}
                end
                add_methods(allow_set, g.methods)
            end
        end
    end

    if allow_set then
        return nil, "method", allow_string(allow_set)
    end
    return nil
end

return _M
