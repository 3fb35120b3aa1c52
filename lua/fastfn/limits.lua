-- Per-function concurrency limit and queue (fn.config.json max_concurrency / worker_pool). Each nginx worker holds a
-- semaphore per function with its share of the permits (limit ÷ workers, rounded up) and of the queue; a request
-- takes a permit before it talks to the function's worker and gives it back in the log phase, so every exit path
-- releases it (the APISIX limit-conn shape). A strict semaphore, not the cosocket pool's soft limit (hot-path.md §5).

local ngx = ngx
local semaphore = require "ngx.semaphore"
local ceil = math.ceil

local _M = { _VERSION = "0.1.0" }

-- Per worker: function id -> { sem, max_waiters }.
local pools = {}

local function pool(fn)
    local p = pools[fn.id]
    if not p then
        local workers = ngx.worker.count()
        local sem, err = semaphore.new(ceil(fn.max_concurrency / workers))
        if not sem then
            error("cannot create the concurrency semaphore: " .. tostring(err))
        end
        p = { sem = sem, max_waiters = ceil(fn.max_queue / workers) }
        pools[fn.id] = p
    end
    return p
end

--- Takes a slot for fn. Returns true, queued (whether it had to wait); or nil, status, message.
function _M.acquire(fn)
    if fn.max_concurrency == 0 then
        return true, false
    end
    local p = pool(fn)
    local sem = p.sem
    if sem:count() > 0 and sem:wait(0) then
        return true, false
    end
    -- count() below zero is the number of requests already waiting.
    if -sem:count() >= p.max_waiters then
        return nil, fn.overflow_status, "worker pool overflow"
    end
    local ok = sem:wait(fn.queue_timeout_ms / 1000)
    if not ok then
        return nil, fn.overflow_status, "worker pool queue timeout"
    end
    return true, true
end

--- Gives fn's slot back (log phase).
function _M.release(fn)
    local p = pools[fn.id]
    if p then
        p.sem:post(1)
    end
end

return _M
