"""Forwarding to the vendor through its PrivateLink endpoint: signed, timed, and behind the breaker."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session as BotocoreSession

from gateway.settings import GatewaySettings

# Request headers passed on to the vendor; everything else (the client's JWT above all) stays here.
# Of Bedrock's own request headers only these: the others name guardrails, projects to bill, trace or log
# metadata, which are the platform's to choose, not a client's. The ones that change the price are priced
# (gateway.pricing).
FORWARDED_REQUEST_HEADERS = (
    "content-type", "accept", "anthropic-version", "anthropic-beta",
    "x-amzn-bedrock-accept", "x-amzn-bedrock-service-tier", "x-amzn-bedrock-performanceconfig-latency",
)  # fmt: skip
FORWARDED_PREFIXES = ("x-amzn-bedrock-",)  # of response headers
# Response headers passed back to the client.
RETURNED_RESPONSE_HEADERS = ("content-type", "x-amzn-requestid", "x-amzn-errortype", "request-id", "retry-after")


class UpstreamTimeoutError(Exception):
    """No first byte within the configured time."""


class UpstreamUnavailableError(Exception):
    """The vendor could not be reached at all (connection refused, DNS, TLS)."""


@dataclass
class Opened:
    response: httpx.Response
    first_byte_ms: float


class Signer:
    """SigV4 for Bedrock with the instance's credentials (botocore's default chain: the instance
    profile on a proxy, environment variables locally), refreshed by botocore as they near expiry."""

    def __init__(self, region: str, session: BotocoreSession | None = None) -> None:
        self.region = region
        credentials = (session or BotocoreSession()).get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found for signing Bedrock requests (botocore's default chain)")
        self._credentials: Credentials = credentials

    def headers(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(self._credentials.get_frozen_credentials(), "bedrock", self.region).add_auth(request)
        return dict(request.headers.items())


class VendorKey:
    """A vendor endpoint service's API key: from Secrets Manager, or (locally) an environment variable."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings.vendor
        self.value: str | None = None

    def load(self) -> None:
        if self.settings.api_key_env:
            self.value = os.environ[self.settings.api_key_env]
        elif self.settings.api_key_secret_id:
            client = BotocoreSession().create_client("secretsmanager", region_name=self.settings.region)
            self.value = client.get_secret_value(SecretId=self.settings.api_key_secret_id)["SecretString"]


class Upstream:
    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.base_url = settings.vendor.url.rstrip("/")
        self.signer = Signer(settings.vendor.region) if settings.vendor.kind == "bedrock" else None
        self.key = VendorKey(settings)

    def bedrock_path(self, model: str, action: str) -> str:
        # Model ids hold ':' and ARNs hold '/': encode them as one path segment, as the AWS SDKs do.
        return f"/model/{quote(model, safe='')}/{action}"

    async def open(self, method: str, path_and_query: str, body: bytes, incoming: dict[str, str]) -> Opened:
        """Send the request and wait for the response headers, at most the first-byte timeout."""
        url = self.base_url + path_and_query
        headers = {name: value for name, value in incoming.items() if name in FORWARDED_REQUEST_HEADERS}
        headers.setdefault("content-type", "application/json")
        if self.signer is not None:
            headers = self.signer.headers(method, url, body, {**headers, "host": httpx.URL(url).netloc.decode()})
        elif self.key.value is not None:
            headers[self.settings.vendor.api_key_header] = self.key.value
        request = self.client.build_request(method, url, content=body, headers=headers)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.upstream.first_byte_timeout_seconds):
                response = await self.client.send(request, stream=True)
        except TimeoutError as error:
            raise UpstreamTimeoutError from error
        except httpx.TimeoutException as error:
            raise UpstreamTimeoutError from error
        except httpx.TransportError as error:
            raise UpstreamUnavailableError(str(error) or type(error).__name__) from error
        return Opened(response=response, first_byte_ms=(time.perf_counter() - started) * 1000)

    def returned_headers(self, response: httpx.Response) -> dict[str, str]:
        return {
            name: value
            for name, value in response.headers.items()
            if name in RETURNED_RESPONSE_HEADERS or name.startswith(FORWARDED_PREFIXES)
        }


def client_for(settings: GatewaySettings) -> httpx.AsyncClient:
    upstream = settings.upstream
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=upstream.connect_timeout_seconds,
            read=upstream.stream_timeout_seconds,
            write=upstream.first_byte_timeout_seconds,
            pool=upstream.queue_wait_seconds + 1,
        ),
        limits=httpx.Limits(
            max_connections=upstream.max_concurrency, max_keepalive_connections=upstream.max_concurrency
        ),
        http2=False,
    )


def dropped_headers(incoming: Mapping[str, str]) -> list[str]:
    """Bedrock request headers the client sent that are not passed on (named in the audit record)."""
    return sorted(
        name for name in incoming if name.startswith(FORWARDED_PREFIXES) and name not in FORWARDED_REQUEST_HEADERS
    )
