"""The IdP-keys function's I/O: JSON over HTTPS from the IdP (the standard library: the runtime has no HTTP client
to spare) and the SSM parameter."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from idp_keys import KeySetError, checked_url

USER_AGENT = "aigw-idp-keys"
# A discovery document or key set is a few kilobytes; anything near this is not one.
MAX_RESPONSE_BYTES = 1024 * 1024
# Intelligent-Tiering keeps the parameter standard while the value fits 4 KB and moves it to the advanced tier when
# it does not; an explicit tier would fail on a parameter already moved (idp_keys.tier_for).
WRITE_TIER = "Intelligent-Tiering"


class _HttpsRedirectsOnly(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        checked_url(newurl, "a redirect")  # urllib would follow https -> http
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_json(url: str, *, timeout: float) -> Any:
    """GET `url` and parse its JSON body; urllib raises on 4xx/5xx, timeouts and TLS failures."""
    opener = urllib.request.build_opener(_HttpsRedirectsOnly())
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
    with opener.open(request, timeout=timeout) as response:
        body = response.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise KeySetError(f"{url} answered more than {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as error:
        raise KeySetError(f"{url} did not answer JSON ({error})") from None


def post_form(url: str, form: dict[str, str], *, timeout: float) -> tuple[int, str]:
    """POST a form to `url` (no redirects followed); the status and body, whatever the status."""
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Accept": "application/json", "User-Agent": USER_AGENT,
                 "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    opener = urllib.request.build_opener(_NoRedirects())
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(MAX_RESPONSE_BYTES).decode(errors="replace")
    except urllib.error.HTTPError as error:  # the IdP's refusal is an answer to pass on
        return error.code, error.read(MAX_RESPONSE_BYTES).decode(errors="replace")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a token endpoint answers; it does not send a code somewhere else


def read_parameter(ssm: Any, name: str) -> str | None:
    try:
        value: str = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return value


def write_parameter(ssm: Any, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True, Tier=WRITE_TIER)
