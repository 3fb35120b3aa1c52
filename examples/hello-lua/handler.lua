-- GET /hello-lua?name=you — runs inside the gateway, in a restricted environment.
return function(event)
    return { hello = event.query.name or "world", runtime = "lua" }
end
