-- wrk script for the load benchmark: every request carries `Authorization: Bearer <token>`,
-- cycling through a file of tokens (one a line), and `done` prints one machine-readable line
-- for run.sh.
--
--   wrk -t1 -c32 -d6s --latency -s tokens.lua http://127.0.0.1:18480/items -- TOKEN_FILE
--
-- The requests are formatted once, in `init`, so the per-request cost on wrk's side is a
-- table lookup whatever the token.

local prepared = {}
local next_one = 1

function init(args)
  local file = args[1]
  if file == nil then
    error("tokens.lua: give the token file after --")
  end
  for token in io.lines(file) do
    if token ~= "" then
      prepared[#prepared + 1] =
        wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
    end
  end
  if #prepared == 0 then
    error("tokens.lua: no tokens in " .. file)
  end
end

function request()
  local r = prepared[next_one]
  next_one = next_one % #prepared + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LOADBENCH requests=%d duration_us=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
