-- Every request shape of bench/run_bench.py in one wrk script; BENCH_SCENARIO picks it:
--
--   get      GET   /user-sessions/<a random live uuid from BENCH_UUIDS>          expects 200
--   get_hot  GET   /user-sessions/<one of the first BENCH_HOT (1000) of them>    expects 200
--   post     POST  /user-sessions  JSON name, email, small metadata             expects 201
--            (metadata.source is "bench-post", so the harness can delete what it made)
--   patch    PATCH /user-sessions/<a random live uuid>  merge patch: name, email expects 200
--   path     GET   BENCH_PATH (a list page)                                      expects 200
--   items    POST  /user-sessions/<a random live uuid>/items  BENCH_BATCH (1) items expects 201
--            (each a small message, as an agent SDK stores a turn)
--
-- Any other status is an error (counted in response(), which wrk calls for
-- every reply); done() prints one line, "BENCHJSON {...}", with the count,
-- the latency percentiles, the unexpected statuses and wrk's socket errors.

local scenario = os.getenv("BENCH_SCENARIO") or "get"
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local function read_uuids(limit)
  local path = assert(os.getenv("BENCH_UUIDS"), "BENCH_UUIDS is not set")
  local uuids = {}
  for line in io.lines(path) do
    if #line > 0 then uuids[#uuids + 1] = line end
    if limit and #uuids >= limit then break end
  end
  assert(#uuids > 0, "no uuids in " .. path)
  return uuids
end

local uuids, fixed_request
local sent = 0

local function random_session_path()
  return "/user-sessions/" .. uuids[math.random(#uuids)]
end

local shapes = {
  get = {
    status = 200,
    init = function() uuids = read_uuids() end,
    request = function() return wrk.format("GET", random_session_path()) end,
  },
  get_hot = {
    status = 200,
    init = function() uuids = read_uuids(tonumber(os.getenv("BENCH_HOT") or "1000")) end,
    request = function() return wrk.format("GET", random_session_path()) end,
  },
  post = {
    status = 201,
    init = function() end,
    request = function()
      sent = sent + 1
      local body = string.format(
        '{"name":"Bench User %d-%d","email":"bench%d.%d@example.com",' ..
        '"metadata":{"source":"bench-post","channel":"web","step":%d}}',
        thread_id, sent, thread_id, sent, sent % 12)
      return wrk.format("POST", "/user-sessions", {["Content-Type"] = "application/json"}, body)
    end,
  },
  patch = {
    status = 200,
    init = function() uuids = read_uuids() end,
    request = function()
      sent = sent + 1
      local body = string.format('{"name":"Patched %d-%d","email":"patched%d.%d@example.com"}',
        thread_id, sent, thread_id, sent)
      return wrk.format("PATCH", random_session_path(),
        {["Content-Type"] = "application/merge-patch+json"}, body)
    end,
  },
  items = {
    status = 201,
    init = function() uuids = read_uuids() end,
    request = function()
      sent = sent + 1
      local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
      local items = {}
      for index = 1, batch do
        items[index] = string.format(
          '{"type":"message","role":"user","content":{"role":"user","content":"Hello Maria, turn %d-%d-%d"}}',
          thread_id, sent, index)
      end
      local body = '{"items":[' .. table.concat(items, ",") .. ']}'
      return wrk.format("POST", random_session_path() .. "/items", {["Content-Type"] = "application/json"}, body)
    end,
  },
  path = {
    status = 200,
    init = function()
      local path = assert(os.getenv("BENCH_PATH"), "BENCH_PATH is not set")
      fixed_request = wrk.format("GET", path)
    end,
    request = function() return fixed_request end,
  },
}

local shape = assert(shapes[scenario], "unknown BENCH_SCENARIO " .. scenario)

function init(args)
  unexpected = 0
  -- BENCH_SEED differs every run, so no run replays the requests of the one before.
  math.randomseed((tonumber(os.getenv("BENCH_SEED")) or os.time()) + thread_id * 7919)
  shape.init()
end

request = shape.request

function response(status, headers, body)
  if status ~= shape.status then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
  local unexpected_total = 0
  for _, thread in ipairs(threads) do unexpected_total = unexpected_total + thread:get("unexpected") end
  local errors = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"unexpected_status":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    unexpected_total, errors.connect, errors.read, errors.write, errors.timeout))
end
