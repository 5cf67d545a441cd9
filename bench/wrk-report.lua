-- wrk hook for bench/bench.sh: when a run ends, print one line of exact
-- figures (latencies in microseconds) for the script to parse, so it does not
-- have to read wrk's rounded, unit-suffixed human output.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d" ..
    " connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
