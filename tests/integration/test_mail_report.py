"""Mail and the fleet report on a real hub (docs/mail.md, docs/reports.md), and a rule's email and
flow actions (docs/rules.md): the report reaches
a local SMTP sink (Debian's python3-aiosmtpd) as a mail with report.html attached, also when
the sink is down at first and the hub restarts meanwhile (the queue is in the store); the
scheduled mailing; the report's HTML escapes what hosts and labels said; `outpost report`."""
import email
import email.policy
import json
import threading
import time

import pytest

from outpost_testlib import free_port, wait_for

aiosmtpd = pytest.importorskip("aiosmtpd.controller")


class Sink:
    """An SMTP server on loopback that keeps what it receives."""

    def __init__(self):
        self.port = free_port()
        self.messages = []
        self.lock = threading.Lock()
        self.ctl = None

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"

    def start(self):
        self.ctl = aiosmtpd.Controller(self, hostname="127.0.0.1", port=self.port)
        self.ctl.start()
        return self

    def stop(self):
        if self.ctl:
            self.ctl.stop()
            self.ctl = None

    def wait(self, n=1, timeout=20):
        return wait_for(lambda: len(self.messages) >= n and self.messages, timeout, step=0.1,
                        what="%d mail(s) at the sink" % n)


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.stop()


def mail_conf(port, **report):
    return {"mail": {"smtp_url": "smtp://127.0.0.1:%d" % port, "from": "hub@example.test",
                     "starttls": "never", "retry_s": 1, "retry_max_s": 2, "timeout_s": 5},
            "report": dict({"mail_to": ["ops@example.test", "oncall@example.test"]}, **report)}


def check_report_mail(frm, rcpt, msg):
    assert frm == "hub@example.test"
    assert sorted(rcpt) == ["oncall@example.test", "ops@example.test"]
    assert msg["Subject"].startswith("Outpost fleet report: ")
    assert msg["To"] == "ops@example.test, oncall@example.test"
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert "The whole report is attached (report.html)." in body
    atts = list(msg.iter_attachments())
    assert [a.get_filename() for a in atts] == ["report.html"]
    html = atts[0].get_content()
    assert "<h1>Outpost fleet report</h1>" in html and "<h2>Tasks</h2>" in html
    return html


def test_report_mail_reaches_the_sink(fleet, sink):
    sink.start()
    f = fleet(n=1, hub_conf=mail_conf(sink.port))
    s, r = f.hub.api("POST", "/api/v1/report/mail", {"id": "now-1"})
    assert s == 200 and r["result"]["queued"], r
    frm, rcpt, msg = sink.wait()[0]
    html = check_report_mail(frm, rcpt, msg)
    assert "web-1" in html
    # A repeat of the id queues nothing more; the queue says it was sent, without the body.
    assert f.hub.api("POST", "/api/v1/report/mail", {"id": "now-1"})[0] == 200
    time.sleep(2)
    assert len(sink.messages) == 1
    q = f.hub.api("GET", "/api/v1/mail")[1]["result"]
    assert len(q) == 1 and q[0]["state"] == "sent" and q[0]["attempts"] == 1
    assert "content" not in q[0]["attachment"] and "text" not in q[0]


def test_mail_survives_a_down_sink_and_a_hub_restart(hub, sink):
    h = hub(mail_conf(sink.port))
    assert h.api("POST", "/api/v1/report/mail", {})[0] == 200
    # The sink is down: the hub tries, fails, and will try again.
    wait_for(lambda: (h.api("GET", "/api/v1/mail")[1]["result"] or [{}])[0].get("attempts", 0)
             >= 2, 15, step=0.2, what="two failed attempts")
    q = h.api("GET", "/api/v1/mail")[1]["result"][0]
    assert q["state"] == "queued" and q["last_error"], q
    assert "not sent (attempt 1)" in h.log()
    h.stop()
    sink.start()
    h.start()
    check_report_mail(*sink.wait()[0])
    wait_for(lambda: h.api("GET", "/api/v1/mail")[1]["result"][0]["state"] == "sent", 5,
             what="the queue to say sent")
    time.sleep(2.5)
    assert len(sink.messages) == 1


def test_scheduled_report(hub, sink):
    sink.start()
    t0 = time.monotonic()
    hub(mail_conf(sink.port, every_s=5))
    # The first mailing a period after the start, not at once; the next a period later.
    check_report_mail(*sink.wait(timeout=15)[0])
    assert time.monotonic() - t0 >= 4.5
    t1 = time.monotonic()
    check_report_mail(*sink.wait(2, timeout=15)[1])
    assert 3.5 <= time.monotonic() - t1 <= 9


def test_mail_refused_without_a_server(hub):
    h = hub()
    s, r = h.api("POST", "/api/v1/report/mail", {})
    assert s == 400 and "report.mail_to names no address" in r["error"]["message"], r
    s, r = h.api("POST", "/api/v1/report/mail", {"id": "../x"})
    assert s == 400 and r["error"]["code"] == "bad_args"
    s, r = h.api("POST", "/api/v1/report/mail", {"to": "x@y"})
    assert s == 400 and "unknown field 'to'" in r["error"]["message"]


HOSTILE = "<script>alert('x')</script>&\"quoted\""


def test_report_escapes_what_hosts_said(fleet):
    f = fleet(n=2)
    s, r = f.hub.api("POST", "/api/v1/hosts/web-1/labels", {"set": {"note": HOSTILE}})
    assert s == 200, r
    f.agents["web-1"].stop()
    f.wait_state("web-1", "down", timeout=20)
    s, html = f.hub.api("GET", "/api/v1/report")
    assert s == 200 and isinstance(html, str)
    assert "<script>" not in html and HOSTILE not in html
    assert ("note=&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;quoted&quot;"
            in html), html
    # The JSON form, and the terminal's.
    s, r = f.hub.api("GET", "/api/v1/report?format=json&hours=2")
    rep = r["result"]
    assert rep["window_hours"] == 2 and rep["hosts"]["by_state"]["down"] == 1
    assert [h["id"] for h in rep["not_up"]] == ["web-1"]
    assert rep["not_up"][0]["labels"]["note"] == HOSTILE
    assert any(c["host_id"] == "web-1" and c["kind"] == "down" for c in rep["changes"])
    assert rep["alerts"] == {"fired": [], "count": 0}
    p = f.ok("report")
    assert "Hosts: 2, " in p.stdout and "web-1 down since" in p.stdout, p.stdout
    for q, text in [("hours=0", "hours: 1 to 744"), ("hours=x", "hours: 1 to 744"),
                    ("format=pdf", "format: html or json"), ("when=now", "unknown parameter")]:
        s, r = f.hub.api("GET", "/api/v1/report?" + q)
        assert s == 400 and text in r["error"]["message"], (q, r)


def test_mail_over_starttls_with_auth(hub, tmp_path):
    """A submission server that takes mail only after STARTTLS and AUTH: the hub checks its
    certificate against mail.ca_file and logs in with the password in mail.password_file."""
    import ssl
    import subprocess
    from aiosmtpd.smtp import AuthResult
    key, crt = tmp_path / "smtp.key", tmp_path / "smtp.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(crt), str(key))
    logins = []

    def auth(server, session, envelope, mechanism, data):
        logins.append((mechanism, data.login, data.password, session.ssl is not None))
        return AuthResult(success=data.login == b"hub" and data.password == b"s3cret pass")

    s = Sink()
    s.ctl = aiosmtpd.Controller(s, hostname="127.0.0.1", port=s.port, tls_context=ctx,
                                require_starttls=True, auth_required=True,
                                authenticator=auth, auth_require_tls=True)
    s.ctl.start()
    try:
        pw = tmp_path / "smtp.password"
        pw.write_text("s3cret pass\n")
        pw.chmod(0o600)
        conf = mail_conf(s.port)
        conf["mail"].update(starttls="always", username="hub", password_file=str(pw),
                            ca_file=str(crt))
        h = hub(conf)
        assert h.api("POST", "/api/v1/report/mail", {})[0] == 200
        check_report_mail(*s.wait()[0])
        assert logins and all(tls for _, _, _, tls in logins), logins
        assert "s3cret" not in h.log()
    finally:
        s.stop()


def test_a_rule_mails_and_starts_a_flow(fleet, sink, tmp_path):
    """A rule's email action goes through the mail queue to the sink; its flow action starts a
    run whose steps see the rule, the host and the action's args."""
    sink.start()
    conf = mail_conf(sink.port)
    conf["rules"] = {"interval_s": 1}
    f = fleet(0, conf)
    f.add("web-1", f.token(), conf={"plugins": {"metrics": {"interval_ms": 1000,
                                                            "statsd_listen": ""}}})
    f.wait_states({"web-1": "up"})
    log = tmp_path / "flow.log"
    s, r = f.hub.api("POST", "/api/v1/flows", {"name": "drain", "target": "web-1", "steps": [
        {"name": "note", "script": 'echo "$OUTPOST_RULE $OUTPOST_HOST $REASON" >> %s' % log}]})
    assert s == 200, r
    rule = {"name": "hot", "condition": "last(app_temp[1m]) > 90", "options": {"cooldown_s": 0},
            "actions": [{"kind": "email", "to": ["oncall@example.test"]},
                        {"kind": "flow", "flow": "drain", "args": {"REASON": "too-hot"}}]}
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(rule))
    f.ok("rules", "add", str(path))
    r = f.agents["web-1"].call("metrics", "push", {"metrics": [{"name": "app_temp",
                                                                 "value": 95}]})
    assert r.ok, r
    frm, rcpt, msg = sink.wait()[0]
    assert rcpt == ["oncall@example.test"], rcpt
    assert msg["Subject"] == "[outpost] hot firing on web-1", msg["Subject"]
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert "rule: hot" in body and "host: web-1" in body and "95" in body, body
    wait_for(lambda: log.exists() and log.read_text(), 30, what="the flow's step to run")
    assert log.read_text() == "hot web-1 too-hot\n"
    runs = f.ok("--json", "flows", "runs").json
    assert [x["origin"] for x in runs] == ["rule:hot"], runs
    # The fleet report counts the alert that fired.
    s, r = f.hub.api("GET", "/api/v1/report?format=json")
    assert s == 200, r
    fired = r["result"]["alerts"]
    assert fired["count"] == 1 and fired["fired"][0]["rule"] == "hot", fired
    assert fired["fired"][0]["host"] == "web-1", fired
