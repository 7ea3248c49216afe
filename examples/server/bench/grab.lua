-- wrk script: every request grabs for a new customer of one promotion, or of
-- several in turn.
-- Usage: PROMOTION=<uuid> wrk -t2 -c64 -d10s -s examples/server/bench/grab.lua http://127.0.0.1:3000
--        PROMOTIONS=<uuid>,<uuid>,... wrk ...   # each request takes the next one
--        CUSTOMER_PREFIX=r2 ...                 # default "wrk"; one per wrk process
--                                               # when several run at once, so
--                                               # their customers never collide
-- Counts answers by status so a run shows how many won (201) and how many
-- found the promotion sold out (410).
local promotions = {}
for id in string.gmatch(os.getenv("PROMOTIONS") or os.getenv("PROMOTION") or "", "[^,]+") do
  table.insert(promotions, id)
end
local prefix = os.getenv("CUSTOMER_PREFIX") or "wrk"
local counter = 0
-- setup() runs in the main interpreter and numbers the threads; each thread
-- reads its number from the global `thread_id` (no local of that name, or it
-- would shadow the global and every thread would be number 0).
local threads_started = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", threads_started)
  threads_started = threads_started + 1
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  wrk.method = "POST"
  wrk.path = "/command/coupons/"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local promotion = promotions[counter % #promotions + 1]
  local body = string.format('{"promotionId":"%s","customerId":"%s-%d-%d"}', promotion, prefix, thread_id, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, n in pairs(s) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("status %d: %d\n", status, n)) end
end
