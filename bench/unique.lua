-- wrk script for bench/http.py: POST /webhooks/rta with a unique event every request.
--
-- Usage: wrk -s bench/unique.lua URL -- TEMPLATE_FILE SIDS_FILE RUN_ID
--   TEMPLATE_FILE: one WFMWorkerChange envelope with the placeholders
--                  __WORKER__, __EVENT__ and __TIME__
--   SIDS_FILE:     worker SIDs, one a line (the roster); requests rotate over them
--   RUN_ID:        a number unique to this wrk run (0 to 2^24-1)
-- Every request gets its own last_processed_event_sid ("EV" + 32 hex digits:
-- 6 for the run, 2 for the wrk thread, 24 for a per-thread counter) and the current time,
-- so the receiver journals each one (no duplicates). At the end each thread's
-- count of requests issued is printed, with wrk's figures, as one JSON line
-- starting with BENCH_JSON.

local threads = {}
local template, sids, run_id
counter = 0    -- globals: setup() sets thread_id, done() reads counter, per thread
thread_id = 0

local function read_all(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("*a")
  f:close()
  return s
end

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  template = read_all(args[1]):gsub("%s+$", "")
  run_id = tonumber(args[3] or "0")
  sids = {}
  for line in io.lines(args[2]) do
    if #line > 0 then table.insert(sids, line) end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local event = string.format("EV%06x%02x%024x", run_id, thread_id, counter)
  local worker = sids[(counter * 7 + thread_id) % #sids + 1]
  local now = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
  local body = template:gsub("__EVENT__", event):gsub("__WORKER__", worker):gsub("__TIME__", now)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local issued = 0
  for _, t in ipairs(threads) do
    issued = issued + (t:get("counter") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "issued": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, issued, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
