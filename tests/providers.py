"""Fake SMS and push providers: real HTTP servers on 127.0.0.1 that speak Twilio's Messages API,
the FCM HTTP v1 API and Google's OAuth 2 token endpoint closely enough to catch a wrong request:
they check the credentials and the body's shape as the real ones do, record what they accepted,
and can be told to answer an error (``fail_next``) or refuse given numbers / tokens as the real
services do."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.servers import free_port

Answer = tuple[int, dict[str, Any]]


@dataclass
class FakeProvider:
    url: str = ""
    # Every request as (path, headers, body); ``accepted`` only the messages taken.
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    # Statuses answered (in order) before behaving normally again: 400, 429, 500 ...
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Seconds each request is held before it is answered (outside the lock, so requests overlap),
    # and the most requests seen in flight at once.
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError


@dataclass
class FakeTwilio(FakeProvider):
    account_sid: str = "AC0123456789abcdef0123456789abcdef"
    auth_token: str = "twilio-token"
    # Numbers Twilio refuses with 21211 (not a valid phone number).
    invalid_numbers: set[str] = field(default_factory=set)
    # Idempotency token -> sid: a repeated request is the same message (no second SMS).
    by_token: dict[str, str] = field(default_factory=dict)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        match = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages\.json", path)
        if match is None:
            return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if match.group(1) != self.account_sid or headers.get("authorization") != f"Basic {expected}":
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return 400, {"code": 20001, "message": "expected a form body", "status": 400}
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        if self.fail_next:
            status = self.fail_next.pop(0)
            return status, {"code": 20500 if status >= 500 else 20429, "message": "failing", "status": status}
        if not form.get("To") or not form.get("From") or not form.get("Body"):
            return 400, {"code": 21604, "message": "A 'To', 'From' and 'Body' are required", "status": 400}
        if form["To"] in self.invalid_numbers:
            return 400, {
                "code": 21211,
                "message": f"The 'To' number {form['To']} is not valid",
                "status": 400,
            }
        token = headers.get("i-twilio-idempotency-token", "")
        if token and token in self.by_token:
            return 201, {"sid": self.by_token[token], "status": "queued"}
        sid = f"SM{uuid.uuid4().hex}"  # globally unique, as Twilio's
        self.accepted.append(form | {"sid": sid, "idempotency_token": token})
        if token:
            self.by_token[token] = sid
        return 201, {"sid": sid, "status": "queued", "to": form["To"], "from": form["From"]}


def fcm_error(status: int, name: str, code: str | None = None) -> Answer:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    error = {"code": status, "message": name.lower(), "status": name, "details": details if code else []}
    return status, {"error": error}


@dataclass
class FakeFcm(FakeProvider):
    project_id: str = "flowline-test"
    access_token: str = "fcm-access-token"
    # Tokens FCM no longer knows: 404 UNREGISTERED.
    unregistered: set[str] = field(default_factory=set)
    # Statuses answered (in order) to messages for one device token before accepting them: one
    # device failing after others were sent.
    fail_tokens: dict[str, list[int]] = field(default_factory=dict)
    # A message to a token in here waits until the event is set, then gets a 503 (the sender
    # died or gave up meanwhile: FCM took nothing).
    hold_tokens: dict[str, threading.Event] = field(default_factory=dict)
    # Tokens taken besides ``access_token``: those a fake token endpoint issued and still honours.
    token_valid: Callable[[str], bool] | None = None

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path != f"/v1/projects/{self.project_id}/messages:send":
            return fcm_error(404, "NOT_FOUND")
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if bearer != self.access_token and not (self.token_valid and self.token_valid(bearer)):
            return fcm_error(401, "UNAUTHENTICATED")
        if self.fail_next:
            return self._failure(self.fail_next.pop(0))
        try:
            message = json.loads(body)["message"]
            token, notification, data = (
                message["token"],
                message.get("notification", {}),
                message.get("data", {}),
            )
        except (ValueError, KeyError, TypeError):
            return fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
        shape_ok = (
            isinstance(token, str)
            and set(message) <= {"token", "notification", "data"}
            and set(notification) <= {"title", "body"}
            and all(isinstance(v, str) for v in notification.values())
            and isinstance(data, dict)
            and all(isinstance(v, str) for v in data.values())
        )
        if not shape_ok:
            return fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
        if token in self.unregistered:
            return fcm_error(404, "NOT_FOUND", "UNREGISTERED")
        if self.fail_tokens.get(token):
            return self._failure(self.fail_tokens[token].pop(0))
        if token in self.hold_tokens:
            # Under the lock: any other request waits for the release too.
            self.hold_tokens.pop(token).wait(timeout=30)
            return self._failure(503)
        name = f"projects/{self.project_id}/messages/{uuid.uuid4().hex[:16]}"
        self.accepted.append(message | {"name": name})
        return 200, {"name": name}

    @staticmethod
    def _failure(status: int) -> Answer:
        names = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
        return fcm_error(status, names.get(status, "INTERNAL"), names.get(status, "INTERNAL"))


@cache
def key_pair(name: str = "main") -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account_json(token_uri: str, key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
    """A service-account key file laid out exactly as Firebase's "Generate new private key" gives it."""
    email = "flowline@flowline-test.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": "flowline-test",
        "private_key_id": "key-1",
        "private_key": pem(key or key_pair()),
        "client_email": email,
        "client_id": "104050607080901020304",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeTokenEndpoint(FakeProvider):
    """Google's OAuth 2 token endpoint for service accounts (``/token``): takes a JWT bearer
    assertion only if it is signed (RS256) by ``public_key`` and claims what Google requires,
    and issues tokens that live ``expires_in`` seconds of ``now`` (the test's clock)."""

    public_key: rsa.RSAPublicKey | None = None
    client_email: str = "flowline@flowline-test.iam.gserviceaccount.com"
    private_key_id: str = "key-1"
    expires_in: int = 100
    now: Callable[[], float] = time.time
    # Every token issued -> when it expires; ``revoked`` ones are refused before that.
    issued: dict[str, float] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    # The claims of every assertion taken.
    claims: list[dict[str, Any]] = field(default_factory=list)

    def valid(self, token: str) -> bool:
        with self.lock:
            return token in self.issued and token not in self.revoked and self.now() < self.issued[token]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path != "/token":
            return 404, {"error": "not_found"}
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return 400, {"error": "invalid_request", "error_description": "expected a form body"}
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        if self.fail_next:
            status = self.fail_next.pop(0)
            return status, {"error": "internal_failure", "error_description": "failing"}
        try:
            encoded_header, encoded_claims, signature = form["assertion"].split(".")
            header, claims = json.loads(_b64decode(encoded_header)), json.loads(_b64decode(encoded_claims))
        except (KeyError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
        assert self.public_key is not None
        try:
            self.public_key.verify(
                _b64decode(signature),
                f"{encoded_header}.{encoded_claims}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        expected_claims = {
            "iss": self.client_email,
            "scope": "https://www.googleapis.com/auth/firebase.messaging",
            "aud": f"{self.url}/token",
        }
        now = self.now()
        claims_ok = (
            header == {"alg": "RS256", "typ": "JWT", "kid": self.private_key_id}
            and {k: claims.get(k) for k in expected_claims} == expected_claims
            and set(claims) == {"iss", "scope", "aud", "iat", "exp"}
            and claims["exp"] - claims["iat"] == 3600
            and abs(claims["iat"] - now) <= 60
        )
        if not claims_ok:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {header} {claims}"}
        self.claims.append(claims)
        token = f"ya29.{uuid.uuid4().hex}"
        self.issued[token] = now + self.expires_in
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}


@contextmanager
def serving(fake: FakeProvider) -> Iterator[FakeProvider]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if fake.delay:
                with fake.lock:
                    fake.in_flight += 1
                    fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
                time.sleep(fake.delay)
            with fake.lock:
                fake.in_flight -= 1 if fake.delay else 0
                fake.requests.append((self.path, headers, body))
                status, answer = fake.handle(self.path, headers, body)
            content = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client is gone (a held request whose sender gave up)

        def log_message(self, *_args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    fake.url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def fake_twilio(**options: Any) -> Iterator[FakeTwilio]:
    with serving(FakeTwilio(**options)) as fake:
        assert isinstance(fake, FakeTwilio)
        yield fake


@contextmanager
def fake_token_endpoint(**options: Any) -> Iterator[FakeTokenEndpoint]:
    with serving(FakeTokenEndpoint(**options)) as fake:
        assert isinstance(fake, FakeTokenEndpoint)
        yield fake


@contextmanager
def fake_fcm(**options: Any) -> Iterator[FakeFcm]:
    with serving(FakeFcm(**options)) as fake:
        assert isinstance(fake, FakeFcm)
        yield fake
