"""A scripted agent for the hub's side of the wire: enrolls with an Ed25519 key (python3-nacl)
and signs its requests exactly as outpost-agent does (docs/protocol.md), so tests and
bench/ingest can send metric batches of their choosing — including wrong ones — to a real
outpost-hub. It is not the agent: the real agent's own shipping is tested with the agent."""
import base64
import hashlib
import http.client
import json
import ssl
import time
import urllib.parse


class FakeAgent:
    def __init__(self, url, host_id, ca=None, token=None):
        import nacl.signing
        self.url = urllib.parse.urlsplit(url)
        self.host_id = host_id
        self.key = nacl.signing.SigningKey.generate()
        self.token = token
        self.ca = ca
        self.conn = None
        self.skew_ms = 0       # added to the time it signs (a host with a wrong clock)
        self.last_headers = {}  # of the last answer, lower-case names

    def _connect(self):
        if self.url.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.check_hostname = False
            return http.client.HTTPSConnection(self.url.hostname, self.url.port, context=ctx,
                                               timeout=60)
        return http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=60)

    def sign(self, method, path, body=b"", t=None):
        """The three signed headers of docs/protocol.md for this request (t: ms, default
        now + skew_ms): keep them to replay the request."""
        t = str(int(time.time() * 1000) + self.skew_ms if t is None else t)
        msg = "%s\n%s\n%s\n%s" % (method, path, t, hashlib.sha256(body).hexdigest())
        return {"X-Outpost-Host": self.host_id, "X-Outpost-Time": t,
                "X-Outpost-Signature": base64.b64encode(
                    self.key.sign(msg.encode()).signature).decode()}

    def request(self, method, path, body=b"", signed=True, headers=None):
        """(status, parsed JSON body) over a kept-alive connection. headers replace the
        signed ones of the same name (a replay passes the captured ones)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
        h = {"Content-Type": "application/json"}
        if signed:
            h.update(self.sign(method, path, body))
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                self.last_headers = {k.lower(): v for k, v in r.getheaders()}
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data

    def enroll(self, hostname=None, facts=None, check=True):
        """Enrolls; hostname and facts are what it claims about itself (default: its id).
        check=False returns (status, body) instead of asserting success."""
        pk = base64.b64encode(bytes(self.key.verify_key)).decode()
        req = {"host_id": self.host_id, "pubkey": pk, "hostname": hostname or self.host_id,
               "version": "fake", "token": self.token}
        if facts is not None:
            req["facts"] = facts
        st, body = self.request("POST", "/api/v1/enroll", req, signed=False)
        if not check:
            return st, body
        assert st == 200, body
        return body

    def post_metrics(self, epoch, batches, raw=None):
        return self.request("POST", "/api/v1/agents/%s/metrics" % self.host_id,
                            raw if raw is not None else {"epoch": epoch, "batches": batches})

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None
