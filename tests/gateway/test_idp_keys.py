"""The IdP's keys reaching a gateway that cannot reach the IdP, as running processes.

In AWS the proxies' VPC has no route out: a function outside it mirrors the IdP's JWKS into an SSM parameter,
and a gateway reads the parameter and, on a kid it does not know, invokes the function asynchronously. Here:

- moto's server (scripts/moto_server.py) is SSM;
- the local token issuer (local/token_issuer.py) is the IdP, with its discovery document;
- the mirror's own code (lambda/idp_keys) runs in this process against the issuer and moto's SSM;
- moto cannot run Lambda functions (no Docker), so a tiny HTTP server here stands in for Lambda's Invoke API
  (`POST /2015-03-31/functions/{name}/invocations`): it answers 202 as Lambda does for InvocationType=Event,
  then runs the mirror's handler in a thread against moto's SSM, as the real function would;
- the gateway is a real process pointed at moto (AWS_ENDPOINT_URL) and at the stand-in (AWS_ENDPOINT_URL_LAMBDA),
  with dummy credentials, and with a jwks_url nothing answers: it can only have the keys through SSM.

The other way, `jwks_proxy`: the gateway fetches the JWKS itself through a corporate HTTP proxy, stood in for by
a tiny forward proxy here, which alone can resolve the IdP's host name.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from gateway.settings import GatewaySettings
from local import harness, token_issuer
from local.harness import MODEL, prompt

FUNCTION_CODE = Path(__file__).resolve().parents[2] / "lambda" / "idp_keys"
if str(FUNCTION_CODE) not in sys.path:
    sys.path.insert(0, str(FUNCTION_CODE))

from idp_keys import EMPTY_VALUE  # noqa: E402
from idp_keys_handler import Clients, Memory, run  # noqa: E402
from idp_keys_io import fetch_json  # noqa: E402
from idp_keys_settings import Settings  # noqa: E402

PARAMETER = "/aigw/local/idp-jwks"
FUNCTION = "aigw-local-idp-keys"
NOWHERE = "http://127.0.0.1:9/.well-known/jwks.json"  # the discard port: nothing answers
UNRESOLVABLE_HOST = "idp.invalid"
MOTO_START_SECONDS = 180  # RFC 6761: never resolves, except in the test's proxy


@dataclass
class LambdaStandIn:
    """Lambda's Invoke API for one function, running the mirror's handler in-process on each asynchronous invoke."""

    settings: Settings
    clients: Clients
    memory: Memory = field(default_factory=Memory)
    invocations: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, object]] = field(default_factory=list)
    url: str = ""

    @contextlib.contextmanager
    def running(self) -> Iterator[LambdaStandIn]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                expected = f"/2015-03-31/functions/{FUNCTION}/invocations"
                if urllib.parse.unquote(self.path) != expected or self.headers.get("x-amz-invocation-type") != "Event":
                    self.send_response(400)
                    self.end_headers()
                    return
                event = json.loads(body)
                stand_in.invocations.append({"event": event, "authorization": self.headers.get("authorization")})
                self.send_response(202)  # accepted: the run happens after the answer, as Lambda's does
                self.send_header("content-length", "0")
                self.end_headers()
                threading.Thread(target=stand_in.invoke, args=(event,), daemon=True).start()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield self
        server.shutdown()

    def invoke(self, event: dict[str, Any]) -> None:
        try:
            self.results.append(run(self.settings, self.clients, event, datetime.now(UTC), self.memory))
        except Exception as error:  # as Lambda would record a failed run
            self.results.append({"outcome": "error", "error": repr(error)})

    def settled(self, runs: int, timeout: float = 30) -> list[dict[str, object]]:
        """The results once `runs` runs have finished (each runs in a thread after its 202)."""
        deadline = time.monotonic() + timeout
        while len(self.results) < runs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.results) == runs, self.results
        return self.results


class ForwardProxy:
    """An HTTP forward proxy (absolute-form requests) that alone resolves UNRESOLVABLE_HOST, to 127.0.0.1."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.seen.append(f"{self.command} {self.path}")
                target = urllib.parse.urlsplit(self.path)
                if not target.scheme:  # origin-form: not a proxy request
                    self.send_response(400)
                    self.end_headers()
                    return
                host = "127.0.0.1" if target.hostname == UNRESOLVABLE_HOST else target.hostname
                upstream = target._replace(netloc=f"{host}:{target.port}").geturl()
                direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy of its own
                with direct.open(upstream, timeout=10) as response:
                    body = response.read()
                    self.send_response(response.status)
                    self.send_header("content-type", response.headers.get("content-type", "application/json"))
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@dataclass
class Mirrored:
    """A gateway that reads its keys from moto's SSM, the issuer, the mirror and the Lambda stand-in."""

    gateway: harness.Process
    settings: GatewaySettings
    keys: token_issuer.KeyFolder
    ssm: Any
    mirror: LambdaStandIn

    def call(self, token: str) -> httpx.Response:
        return httpx.post(
            self.gateway.url + f"/model/{MODEL}/invoke",
            json=prompt("Say hello."),
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )

    def mirrored_kids(self) -> list[str]:
        value = json.loads(self.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"])
        return [key["kid"] for key in value["keys"]]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idp-keys")


@pytest.fixture(scope="module")
def own_issuer(workdir: Path) -> Iterator[tuple[harness.Process, token_issuer.KeyFolder]]:
    """An issuer of this module's own: its keys rotate here, and other modules' tokens must not notice."""
    keys = token_issuer.KeyFolder(workdir / "keys")
    keys.add("k1")
    process = harness.start_issuer(workdir, keys.folder)
    yield process, keys
    process.stop()


@pytest.fixture(scope="module")
def moto(workdir: Path) -> Iterator[harness.Process]:
    """moto's server with the project's fixes; it imports most of moto, so it gets longer to start than the others."""
    port = harness.free_port()
    log = workdir / "moto.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "scripts/moto_server.py", "-H", "127.0.0.1", "-p", str(port)],
            cwd=harness.ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = harness.Process("moto", popen, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + MOTO_START_SECONDS
    while True:
        try:
            if httpx.get(process.url + "/moto-api/", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if popen.poll() is not None or time.monotonic() > deadline:
            process.stop()
            raise RuntimeError(f"moto did not start:\n{process.log_tail()}")
        time.sleep(0.2)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def mirrored(
    workdir: Path,
    vendor: harness.Process,
    own_issuer: tuple[harness.Process, token_issuer.KeyFolder],
    moto: harness.Process,
) -> Iterator[Mirrored]:
    issuer, keys = own_issuer
    settings = harness.settings_for(
        workdir,
        vendor.url,
        issuer.url,
        limits__enabled=False,
        auth__jwks_url=NOWHERE,
        auth__jwks_parameter=PARAMETER,
        auth__jwks_refresh_function=FUNCTION,
        auth__jwks_min_refresh_seconds=1,
        # How long a request waits for the mirror: generous, for a busy test machine.
        auth__jwks_timeout_seconds=8,
    )
    region = settings.vendor.region
    ssm = boto3.client(
        "ssm",
        region_name=region,
        endpoint_url=moto.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ssm.put_parameter(Name=PARAMETER, Value=EMPTY_VALUE, Type="String")  # as CloudFormation creates it
    mirror_settings = Settings.from_env(
        {
            "ISSUER": token_issuer.ISSUER,
            "PARAMETER_NAME": PARAMETER,
            # The local issuer's `iss` is not its address: the discovery document is found where it answers.
            "DISCOVERY_URL": issuer.url + token_issuer.DISCOVERY_PATH,
            "MIN_REFRESH_SECONDS": "1",
        }
    )
    stand_in = LambdaStandIn(mirror_settings, Clients(ssm=ssm, fetch_json=partial(fetch_json, timeout=5)))
    with stand_in.running() as started:
        # The schedule's first run fills the parameter before the gateway starts.
        started.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
        gateway = harness.start_gateway(
            workdir,
            settings,
            env={"AWS_ENDPOINT_URL": moto.url, "AWS_ENDPOINT_URL_LAMBDA": started.url},
        )
        try:
            yield Mirrored(gateway, settings, keys, ssm, started)
        finally:
            gateway.stop()


def test_the_gateway_accepts_a_token_with_keys_it_read_from_ssm(mirrored: Mirrored) -> None:
    assert mirrored.mirror.settled(1)[0]["outcome"] == "written"  # the scheduled run
    assert mirrored.mirrored_kids() == ["k1"]
    response = mirrored.call(mirrored.keys.token("k1", user="mirrored@example.com"))
    assert response.status_code == 200, response.text
    assert mirrored.mirror.invocations == []  # a known kid asks nobody
    with pytest.raises(httpx.TransportError):  # and the URL it was given answers nobody
        httpx.get(NOWHERE, timeout=2)


def test_a_rotated_key_makes_the_gateway_ask_for_a_refresh_and_then_pass(mirrored: Mirrored) -> None:
    mirrored.keys.add("k2")
    time.sleep(mirrored.settings.auth.jwks_min_refresh_seconds)  # past the last read's rate limit
    response = mirrored.call(mirrored.keys.token("k2", user="rotated@example.com"))
    assert response.status_code == 200, response.text
    (asked,) = mirrored.mirror.invocations
    assert asked["event"] == {"source": "aigw.gateway", "reason": "unknown_signing_key", "kid": "k2"}
    assert asked["authorization"].startswith("AWS4-HMAC-SHA256 ")  # botocore's signed Invoke, as Lambda sees it
    assert mirrored.mirror.settled(2)[-1]["outcome"] == "written"
    assert mirrored.mirrored_kids() == ["k1", "k2"]


def test_an_unknown_kid_is_refused_after_a_bounded_wait(mirrored: Mirrored) -> None:
    time.sleep(mirrored.settings.auth.jwks_min_refresh_seconds)
    asked_before = len(mirrored.mirror.invocations)
    token = mirrored.keys.token("k1")
    header = json.dumps({"alg": "RS256", "typ": "JWT", "kid": "made-up"}).encode()
    forged = base64.urlsafe_b64encode(header).rstrip(b"=").decode() + token[token.index(".") :]
    started = time.monotonic()
    response = mirrored.call(forged)
    waited = time.monotonic() - started
    assert response.status_code == 401 and response.json()["reason"] == "unknown_signing_key"
    assert len(mirrored.mirror.invocations) == asked_before + 1
    assert mirrored.mirror.invocations[-1]["event"]["kid"] == "made-up"
    # It waited for the mirror (which found nothing new to write), but no longer than jwks_timeout_seconds.
    assert 1 < waited < mirrored.settings.auth.jwks_timeout_seconds + 2
    assert mirrored.mirror.settled(asked_before + 2)[-1]["outcome"] in ("unchanged", "skipped")
    # Within jwks_min_refresh_seconds the same kid costs nothing: no read, no ask, an immediate answer.
    again = mirrored.call(forged)
    assert again.json()["reason"] == "unknown_signing_key"
    assert len(mirrored.mirror.invocations) == asked_before + 1


# -- through a corporate proxy ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy() -> Iterator[ForwardProxy]:
    forward = ForwardProxy()
    yield forward
    forward.server.shutdown()


def test_jwks_proxy_fetches_the_keys_through_the_proxy(
    workdir: Path,
    vendor: harness.Process,
    own_issuer: tuple[harness.Process, token_issuer.KeyFolder],
    proxy: ForwardProxy,
) -> None:
    issuer, keys = own_issuer
    port = urllib.parse.urlsplit(issuer.url).port
    jwks_url = f"http://{UNRESOLVABLE_HOST}:{port}{token_issuer.JWKS_PATH}"
    with pytest.raises(socket.gaierror):  # only the proxy can reach it
        socket.getaddrinfo(UNRESOLVABLE_HOST, port)
    folder = workdir / "proxied"
    folder.mkdir()
    settings = harness.settings_for(
        folder, vendor.url, issuer.url, limits__enabled=False, auth__jwks_url=jwks_url, auth__jwks_proxy=proxy.url
    )
    gateway = harness.start_gateway(folder, settings)
    try:
        response = httpx.post(
            gateway.url + f"/model/{MODEL}/invoke",
            json=prompt("Say hello."),
            headers={"authorization": f"Bearer {keys.token('k1')}"},
            timeout=30,
        )
    finally:
        gateway.stop()
    assert response.status_code == 200, response.text
    assert f"GET {jwks_url}" in proxy.seen
