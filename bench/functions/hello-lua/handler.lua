return function(event)
    return { hello = "world" }
end
