-- Framing shared by every unix socket of the stack (docs/wire.md): a 4-byte big-endian unsigned length `n`, then `n`
-- bytes of JSON holding one object. Pure Lua (no ngx, no bit library) so it runs under plain Lua/LuaJIT in busted.

local byte = string.byte
local char = string.char
local floor = math.floor
local type = type

local _M = {
    _VERSION = "0.1.0",
    MIN_LEN = 2,                 -- the smallest JSON object, "{}"
    MAX_RESPONSE = 10485760,     -- 10 MiB: limit for frames a worker sends to the gateway
    MAX_REQUEST = 8388608,       -- 8 MiB: the worker's default limit for frames the gateway sends
    MAX_LEN = 4294967295,        -- what 4 bytes can express
}

-- The 4-byte big-endian header for a payload of n bytes.
local function header(n)
    if type(n) ~= "number" or n < 0 or n > _M.MAX_LEN or floor(n) ~= n then
        error("frame length must be an integer in 0.." .. _M.MAX_LEN, 2)
    end
    return char(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end
_M.header = header

-- One whole frame as a string. Senders may pass `{header(#payload), payload}` to a cosocket to spare the copy.
function _M.encode(payload)
    if type(payload) ~= "string" then
        error("frame payload must be a string", 2)
    end
    return header(#payload) .. payload
end

-- The length in a 4-byte header, checked against [MIN_LEN, max]. Returns n, or nil and an error.
function _M.decode_len(hdr, max)
    if type(hdr) ~= "string" or #hdr ~= 4 then
        return nil, "short header"
    end
    local b1, b2, b3, b4 = byte(hdr, 1, 4)
    local n = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    if n < _M.MIN_LEN then
        return nil, "frame too short"
    end
    if n > (max or _M.MAX_RESPONSE) then
        return nil, "frame too large"
    end
    return n
end

-- Splits one frame off the start of a buffer. Returns payload, rest; or nil, "incomplete" when more bytes are needed;
-- or nil and another error when the length is out of bounds.
function _M.decode(buf, max)
    if type(buf) ~= "string" then
        return nil, "buffer must be a string"
    end
    if #buf < 4 then
        return nil, "incomplete"
    end
    local n, err = _M.decode_len(buf:sub(1, 4), max)
    if not n then
        return nil, err
    end
    if #buf < 4 + n then
        return nil, "incomplete"
    end
    return buf:sub(5, 4 + n), buf:sub(5 + n)
end

return _M
