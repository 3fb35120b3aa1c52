-- luacheck config for the Lua gateway (run `luacheck lua` from the repository root).
std = "ngx_lua"
max_line_length = 120
codes = true

files["lua/spec"] = { std = "+busted" }
