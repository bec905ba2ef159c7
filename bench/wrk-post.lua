-- wrk script for bench/agent-core: POST {"args":{}} (the agent's call body) to the URL's path,
-- and print one machine-readable line at the end for the bench to parse.
wrk.method = "POST"
wrk.body = '{"args":{}}'
wrk.headers["Content-Type"] = "application/json"
-- The agent's TCP API wants its token (docs/security.md); other servers ignore the header.
local token = os.getenv("OUTPOST_API_TOKEN")
if token then
	wrk.headers["Authorization"] = "Bearer " .. token
end

done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
		'"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
		'"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
		'"p50":%d,"p90":%d,"p99":%d,"p99_9":%d}}\n',
		summary.requests, summary.duration, summary.bytes,
		e.connect, e.read, e.write, e.status, e.timeout,
		latency.min, latency.mean, latency.max, latency.stdev,
		latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency:percentile(99.9)))
end
