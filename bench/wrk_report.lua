-- wrk script for bench/run.py: sends the gateway token (BENCH_TOKEN, when set) and, at the end,
-- prints one machine-readable line with the totals and latency percentiles (microseconds).
-- errors.status counts responses >= 400; connect/read/write/timeout are socket errors.
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["X-VX11-GW-TOKEN"] = token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %.1f, "p99_us": %.1f, '
      .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
