-- busted lua/spec   (from the repository root; runs under plain Lua 5.1+ or LuaJIT, no nginx)
local here = debug.getinfo(1, "S").source:match("^@(.*)spec/[^/]*$") or "lua/"
package.path = here .. "?.lua;" .. package.path

local router = require "fastfn.router"

local function route(path, methods, fn)
    return { path = path, methods = methods, fn = fn, dynamic = path:find("/:", 1, true) ~= nil }
end

local function build(routes, conflicts)
    local r, err = router.new(routes, conflicts)
    assert.is_nil(err)
    return r
end

describe("router.normalize", function()
    local normalize = router.normalize

    it("collapses slashes and drops the trailing slash", function()
        assert.are.equal("/a/b", normalize("/a/b"))
        assert.are.equal("/a/b", normalize("/a//b/"))
        assert.are.equal("/a/b", normalize("//a///b//"))
        assert.are.equal("/", normalize("/"))
        assert.are.equal("/", normalize("//"))
    end)

    it("refuses .. segments and relative paths", function()
        assert.is_nil(normalize("/a/../b"))
        assert.is_nil(normalize("/.."))
        assert.is_nil(normalize("/a/.."))
        assert.is_nil(normalize("/a/../"))
        assert.is_nil(normalize("a/b"))
        assert.is_nil(normalize(""))
        assert.is_nil(normalize(nil))
    end)

    it("keeps names that merely contain dots", function()
        assert.are.equal("/a/..b", normalize("/a/..b"))
        assert.are.equal("/a/b..", normalize("/a/b.."))
        assert.are.equal("/.../x", normalize("/.../x"))
        assert.are.equal("/a/./b", normalize("/a/./b"))
    end)
end)

describe("router.parse_pattern", function()
    it("accepts catalog patterns", function()
        local p = router.parse_pattern("/users/:id/files/:rest*")
        assert.are.equal(4, p.n)
        assert.are.same({ "users", false, "files", false }, p.static)
        assert.are.equal("id", p.names[2])
        assert.are.equal("rest", p.names[4])
        assert.is_true(p.catch)
        assert.are.equal(2, p.nstatic)
        assert.are.equal(1, p.nsingle)
        assert.are.equal(0, router.parse_pattern("/").n)
    end)

    it("rejects what is not a normalised pattern", function()
        for _, bad in ipairs({ "", "users", "/users/", "/a//b", "/:rest*/x", "/:", "/:*", "/a/*", "/a/../b",
                               "/a/./b", "/:a:b" }) do
            local p, err = router.parse_pattern(bad)
            assert.is_nil(p, bad)
            assert.is_string(err, bad)
        end
    end)
end)

describe("router.match", function()
    it("matches exact routes and returns an empty params table", function()
        local r = build({ route("/hello", { "GET" }, "hello"), route("/", { "GET" }, "root") })
        local fn, params = r:match("/hello", "GET")
        assert.are.equal("hello", fn)
        assert.are.same({}, params)
        assert.are.equal("root", (r:match("/", "GET")))
        assert.is_nil(r:match("/nope", "GET"))
        assert.is_nil(r:match("/hello/x", "GET"))
    end)

    it("is case-sensitive", function()
        local r = build({ route("/users/:id", { "GET" }, "u"), route("/Hello", { "GET" }, "h") })
        assert.is_nil(r:match("/Users/42", "GET"))
        assert.is_nil(r:match("/hello", "GET"))
        assert.are.equal("h", (r:match("/Hello", "GET")))
    end)

    it("captures single parameters, lower-casing their names", function()
        local r = build({ route("/users/:ID/posts/:post", { "GET" }, "p") })
        local fn, params = r:match("/users/42/posts/a%20b", "GET")
        assert.are.equal("p", fn)
        assert.are.same({ id = "42", post = "a%20b" }, params)
        assert.is_nil(r:match("/users/42/posts", "GET"))
        assert.is_nil(r:match("/users/42/posts/1/2", "GET"))
    end)

    it("does not let a parameter match an empty segment", function()
        local r = build({ route("/a/:x/b", { "GET" }, "f") })
        assert.is_nil(r:match("/a//b", "GET"))
    end)

    it("captures the rest of the path with a catch-all (one or more segments)", function()
        local r = build({ route("/files/:path*", { "GET" }, "files") })
        local fn, params = r:match("/files/a/b/c.txt", "GET")
        assert.are.equal("files", fn)
        assert.are.same({ path = "a/b/c.txt" }, params)
        assert.are.same({ path = "x" }, select(2, r:match("/files/x", "GET")))
        assert.is_nil(r:match("/files", "GET"))
    end)

    it("mixes parameters and a catch-all", function()
        local r = build({ route("/u/:id/:rest*", { "GET" }, "f") })
        assert.are.same({ id = "7", rest = "a/b" }, select(2, r:match("/u/7/a/b", "GET")))
        assert.is_nil(r:match("/u/7", "GET"))
    end)

    it("takes the first route in catalog order whose methods contain the method", function()
        local r = build({
            route("/users/me", { "GET" }, "me"),
            route("/users/:id", { "GET", "DELETE" }, "by-id"),
            route("/users/:rest*", { "GET", "PUT" }, "any"),
        })
        assert.are.equal("me", (r:match("/users/me", "GET")))
        assert.are.equal("by-id", (r:match("/users/me", "DELETE")))
        assert.are.equal("any", (r:match("/users/me", "PUT")))
        assert.are.equal("by-id", (r:match("/users/42", "GET")))
        assert.are.equal("any", (r:match("/users/42/x", "GET")))
    end)

    it("serves disjoint methods of several routes on one path", function()
        local r = build({
            route("/users", { "GET" }, "list"), route("/users", { "POST" }, "create"),
            route("/items/:id", { "GET" }, "get"), route("/items/:id", { "PATCH" }, "patch"),
        })
        assert.are.equal("list", (r:match("/users", "GET")))
        assert.are.equal("create", (r:match("/users", "POST")))
        assert.are.equal("get", (r:match("/items/1", "GET")))
        assert.are.equal("patch", (r:match("/items/1", "PATCH")))
    end)

    it("answers method not allowed with the sorted methods of the path", function()
        local r = build({
            route("/users", { "POST" }, "create"), route("/users", { "PURGE", "DELETE", "GET" }, "list"),
        })
        -- HEAD follows GET and OPTIONS comes last: the gateway answers both itself.
        assert.are.same({ nil, "method", "GET, HEAD, POST, DELETE, PURGE, OPTIONS" }, { r:match("/users", "PUT") })
        assert.are.same({ nil, "method", "GET, HEAD, POST, DELETE, PURGE, OPTIONS" }, { r:match("/users", "HEAD") })
    end)

    it("unions the methods of every pattern that matched", function()
        local r = build({
            route("/users/me", { "GET" }, "me"),
            route("/users/:id", { "DELETE" }, "del"),
            route("/users/:id", { "PATCH" }, "patch"),
            route("/other/:id", { "POST" }, "other"),
        })
        assert.are.same({ nil, "method", "GET, HEAD, PATCH, DELETE, OPTIONS" }, { r:match("/users/me", "PUT") })
        assert.are.same({ nil, "method", "PATCH, DELETE, OPTIONS" }, { r:match("/users/42", "GET") })
    end)

    it("answers conflict for a conflicted exact path, whatever the method", function()
        local r = build({ route("/dup", { "GET" }, "one") }, { "/dup", "/only-conflict" })
        assert.are.same({ nil, "conflict" }, { r:match("/dup", "GET") })
        assert.are.same({ nil, "conflict" }, { r:match("/dup", "POST") })
        assert.are.same({ nil, "conflict" }, { r:match("/only-conflict", "GET") })
    end)

    it("answers conflict for a path that matches a conflicted dynamic pattern", function()
        local r = build({ route("/users/me", { "GET" }, "me"), route("/users/:id", { "GET" }, "one") },
            { "/users/:id" })
        assert.are.equal("me", (r:match("/users/me", "GET")))
        assert.are.same({ nil, "conflict" }, { r:match("/users/42", "GET") })
        -- an exact route that lacks the method falls through to the conflicted pattern
        assert.are.same({ nil, "conflict" }, { r:match("/users/me", "POST") })
    end)

    it("ranks a conflicted pattern that is not among the routes: more specific routes still win", function()
        local r = build({
            route("/a/b/:y", { "GET" }, "specific"),
            route("/a/:x*", { "GET" }, "rest"),
        }, { "/a/:x/:y" })
        assert.are.equal("specific", (r:match("/a/b/c", "GET")))
        assert.are.same({ nil, "conflict" }, { r:match("/a/z/c", "GET") })
        assert.are.equal("rest", (r:match("/a/z", "GET")))
        assert.are.equal("rest", (r:match("/a/z/c/d", "GET")))
    end)

    it("ranks equal keys by path, as the catalog sorts them", function()
        assert.is_true(router.ranks_before(router.parse_pattern("/a/:x/c"), router.parse_pattern("/a/b/:y")))
        assert.is_true(router.ranks_before(router.parse_pattern("/a/b/:y"), router.parse_pattern("/a/:x/:y")))
        assert.is_true(router.ranks_before(router.parse_pattern("/a/:x/:y"), router.parse_pattern("/a/:x")))
        assert.is_true(router.ranks_before(router.parse_pattern("/a/:x/:y"), router.parse_pattern("/a/:x/:y*")))
        assert.is_true(router.ranks_before(router.parse_pattern("/a/:x/:y*"), router.parse_pattern("/a/:x*")))
    end)

    it("returns nil when no pattern matches", function()
        local r = build({ route("/x/:id", { "GET" }, "x") })
        assert.are.same({}, { r:match("/y/1", "GET") })
        local empty = build({})
        assert.are.same({}, { empty:match("/", "GET") })
    end)

    it("reports bad input instead of building", function()
        assert.is_nil((router.new({ { path = "/a/", methods = { "GET" } } })))
        assert.is_nil((router.new({ { path = "/a", methods = {} } })))
        assert.is_nil((router.new({ { path = "/a", methods = { "GET" } } }, { "/b/" })))
        assert.is_nil((router.new("nope")))
    end)

    it("returns fresh params tables", function()
        local r = build({ route("/u/:id", { "GET" }, "u"), route("/e", { "GET" }, "e") })
        local _, p1 = r:match("/u/1", "GET")
        local _, p2 = r:match("/u/2", "GET")
        assert.are_not.equal(p1, p2)
        assert.are.equal("1", p1.id)
        local _, e1 = r:match("/e", "GET")
        local _, e2 = r:match("/e", "GET")
        assert.are_not.equal(e1, e2)
    end)
end)
