"""Integration tests of the metrics plugin: the real agent samples the host on the grid and
takes application metrics over its local API (metrics.push) and over StatsD on loopback."""
import socket
import time



def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def series(result, name, **labels):
    """The value of the series with exactly these labels, or None."""
    for s in result["series"]:
        if s["name"] == name and s["labels"] == labels:
            return s["value"]
    return None


def wait_for(fn, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in %ss" % timeout)


def test_push_statsd_and_now(agent):
    port = free_udp_port()
    a = agent({"plugins": {"metrics": {"interval_ms": 1000,
                                       "statsd_listen": "127.0.0.1:%d" % port}}})

    # Host series appear on the grid within an interval or two.
    r = wait_for(lambda: (lambda x: x if x.ok and x.json["result"]["time_ms"] else None)(
        a.call("metrics", "now", {"match": "host_"})))
    res = r.json["result"]
    assert res["interval_ms"] == 1000 and res["time_ms"] % 1000 == 0
    assert abs(res["time_ms"] - time.time() * 1000) < 3000
    assert series(res, "host_memory_bytes", kind="total") > 0
    assert all(s["name"].startswith("host_") for s in res["series"])

    # Over HTTP, on both the TCP port and the unix socket.
    r = a.call("metrics", "push", {"metrics": [
        {"name": "app_jobs_total", "type": "counter", "value": 2, "labels": {"queue": "mail"}},
        {"name": "app_temperature", "value": 41.5}]})
    assert r.ok, r.text
    assert a.call("metrics", "push", {"metrics": [
        {"name": "app_jobs_total", "type": "counter", "value": 3, "labels": {"queue": "mail"}}]},
        via="unix").ok
    r = a.call("metrics", "push", {"metrics": [{"name": "ok_one", "value": 1},
                                               {"name": "bad-name", "value": 1}]})
    assert r.status == 400 and r.json["error"]["code"] == "bad_args"
    assert "metrics[1]" in r.json["error"]["message"]

    # Over StatsD.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"web.hits:1|c\nweb.hits:1|c|@0.5\nqueue.depth:7|g\nnot a line\n",
                 ("127.0.0.1", port))

    def app():
        res = a.call("metrics", "now", {"match": ""}).json["result"]
        return res if series(res, "web_hits") is not None else None

    res = wait_for(app)
    assert series(res, "app_jobs_total", queue="mail") == 5
    assert series(res, "app_temperature") == 41.5
    assert series(res, "ok_one") is None
    assert series(res, "web_hits") == 3
    assert series(res, "queue_depth") == 7
    assert series(res, "statsd_bad_lines_total") == 1
    assert series(res, "host_cpu_count") >= 1

    r = a.call("metrics", "now", {"match": "app_"}).json["result"]
    assert {s["name"] for s in r["series"]} == {"app_jobs_total", "app_temperature"}


def test_unknown_config_key_disables_the_plugin_with_a_clear_log(agent):
    a = agent({"plugins": {"metrics": {"interval": 5}}})
    a.wait_log("unknown metrics config key 'interval'")
    r = a.call("metrics", "now")
    assert not r.ok
