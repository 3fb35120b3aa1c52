return function(event)
    return { hello = "world", runtime = "lua" }
end
