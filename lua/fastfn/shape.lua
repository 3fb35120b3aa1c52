-- Shape checks for decoded JSON, shared by the loaders of catalog.json and gateway.json (both run at init).

local floor = math.floor
local pairs = pairs
local type = type

local _M = {}

--- Whether t is a JSON array as cjson decodes one: a table whose keys are exactly 1..#t.
function _M.is_array(t)
    if type(t) ~= "table" then
        return false
    end
    local n = #t
    for k in pairs(t) do
        if type(k) ~= "number" or k < 1 or k > n or floor(k) ~= k then
            return false
        end
    end
    return true
end

--- Whether v is an integer a double holds exactly, and at least `min` when given.
function _M.is_int(v, min)
    return type(v) == "number" and floor(v) == v and v > -2 ^ 53 and v < 2 ^ 53 and (min == nil or v >= min)
end

return _M
