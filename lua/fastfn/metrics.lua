-- Request metrics for /_fn/metrics (Prometheus text format 0.0.4). The log phase of `location /` records each
-- function request in a shared dict (three increments: count by status, a latency bucket, the latency sum);
-- render() turns the counters into text, cumulating buckets only then.

local ngx = ngx
local tostring = tostring
local tonumber = tonumber
local concat = table.concat
local gsub = string.gsub
local find = string.find
local sub = string.sub
local format = string.format
local sort = table.sort
local pairs = pairs
local next = next
local ipairs = ipairs
local new_tab = require "table.new"
local clear_tab = require "table.clear"

local _M = { _VERSION = "0.1.0" }

-- Upper bounds in seconds; a request slower than the last lands in +Inf.
local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
local NBUCKETS = #BUCKETS

local dict

function _M.init()
    dict = ngx.shared.fastfn_metrics
    if not dict then
        error("nginx.conf has no `lua_shared_dict fastfn_metrics`", 0)
    end
end

-- Per-function key strings, built once per function (at catalog load), so recording allocates only the status key.
local function keys_of(fn)
    local keys = fn.metric_keys
    if not keys then
        local id = fn.id
        keys = { count = "r:" .. id .. ":", by_status = {}, sum = "s:" .. id, buckets = new_tab(NBUCKETS + 1, 0) }
        for i = 1, NBUCKETS + 1 do
            keys.buckets[i] = "b:" .. id .. ":" .. i
        end
        fn.metric_keys = keys
    end
    return keys
end
_M.prepare = keys_of

local UNMATCHED = "r:-:"

-- Counts are added up per nginx worker in this table and moved to the shared dict once a second (and before a
-- render in this worker): a shared-dict increment takes its lock, three of them per request cost more than the
-- whole table work. /_fn/metrics may therefore lag by up to a second.
local pending = {}

local function add(key, n)
    pending[key] = (pending[key] or 0) + n
end

--- Counts one answered request of fn (nil: no function matched) with its status and duration in seconds.
function _M.record(fn, status, seconds)
    if not fn then
        add(UNMATCHED .. status, 1)
        return
    end
    local keys = fn.metric_keys or keys_of(fn)
    local by_status = keys.by_status
    local count_key = by_status[status]
    if not count_key then
        count_key = keys.count .. status
        by_status[status] = count_key
    end
    add(count_key, 1)
    local b = NBUCKETS + 1
    for i = 1, NBUCKETS do
        if seconds <= BUCKETS[i] then
            b = i
            break
        end
    end
    add(keys.buckets[b], 1)
    add(keys.sum, seconds)
end

--- Moves this worker's counts into the shared dict (a timer calls it every second).
function _M.flush()
    if next(pending) == nil then
        return
    end
    for key, n in pairs(pending) do
        dict:incr(key, n, 0)
    end
    clear_tab(pending)
end

local function label(v)
    v = gsub(tostring(v), "\\", "\\\\")
    v = gsub(v, "\n", "\\n")
    return (gsub(v, '"', '\\"'))
end

--- The metrics text. functions: id → catalog function; extra: lines the caller appends (worker metrics).
function _M.render(functions, extra)
    _M.flush()
    local keys = dict:get_keys(0)
    sort(keys)
    local requests, buckets, sums = {}, {}, {}
    for i = 1, #keys do
        local key = keys[i]
        local kind = sub(key, 1, 1)
        local rest = sub(key, 3)
        local value = dict:get(key) or 0
        if kind == "s" then
            sums[rest] = value
        else
            local colon = find(rest, ":", 1, true)
            if colon then
                local id, tail = sub(rest, 1, colon - 1), sub(rest, colon + 1)
                if kind == "r" then
                    requests[#requests + 1] = { id, tail, value }
                elseif kind == "b" then
                    local per = buckets[id] or {}
                    per[tonumber(tail)] = value
                    buckets[id] = per
                end
            end
        end
    end

    local out = {
        "# HELP fastfn_requests_total Requests on function routes, by function and HTTP status "
            .. "(function=\"\" for requests no function matched).",
        "# TYPE fastfn_requests_total counter",
    }
    local function names(id)
        local fn = functions[id]
        if fn then
            return label(fn.name), label(fn.runtime)
        end
        return "", ""
    end
    for i = 1, #requests do
        local r = requests[i]
        local name, runtime = names(r[1])
        out[#out + 1] = format('fastfn_requests_total{function="%s",runtime="%s",status="%s"} %d', name, runtime,
            r[2], r[3])
    end
    out[#out + 1] = "# HELP fastfn_request_duration_seconds Time from the first request byte to the last response "
        .. "byte, per function."
    out[#out + 1] = "# TYPE fastfn_request_duration_seconds histogram"
    local ids = {}
    for id in pairs(buckets) do
        ids[#ids + 1] = id
    end
    sort(ids)
    for _, id in ipairs(ids) do
        local per = buckets[id]
        local name, runtime = names(id)
        local cumulative = 0
        for b = 1, NBUCKETS + 1 do
            cumulative = cumulative + (per[b] or 0)
            local le = b <= NBUCKETS and tostring(BUCKETS[b]) or "+Inf"
            out[#out + 1] = format('fastfn_request_duration_seconds_bucket{function="%s",runtime="%s",le="%s"} %d',
                name, runtime, le, cumulative)
        end
        out[#out + 1] = format('fastfn_request_duration_seconds_sum{function="%s",runtime="%s"} %.6f', name, runtime,
            sums[id] or 0)
        out[#out + 1] = format('fastfn_request_duration_seconds_count{function="%s",runtime="%s"} %d', name, runtime,
            cumulative)
    end
    for i = 1, #extra do
        out[#out + 1] = extra[i]
    end
    out[#out + 1] = ""
    return concat(out, "\n")
end

_M.label = label

return _M
