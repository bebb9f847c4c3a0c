"""A local stand-in for the load balancer in front of two or more gateway processes, for the drills: round robin
over the healthy ones, health checks on /healthz as the ALB's target group makes them (a target is out after 3
failed checks and back after 2 good ones), 502 when a target cannot be reached and 503 when none is healthy.
It counts what CloudWatch would: requests, its own 5xx (ELB) and the targets' (target), healthy targets over time.

Not a load balancer for anything else: it buffers whole answers (the drills send no streams).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Target:
    url: str
    healthy: bool = True
    streak: int = 0  # checks in a row that disagree with `healthy`
    marked_unhealthy_at: list[float] = field(default_factory=list)


@dataclass
class Counts:
    requests: int = 0
    elb_5xx: int = 0
    target_5xx: int = 0
    # (seconds since start, healthy targets), at every check round
    healthy: list[tuple[float, int]] = field(default_factory=list)


class RoundRobin:
    def __init__(
        self,
        targets: Sequence[str],
        *,
        interval_seconds: float = 1.0,
        unhealthy_after: int = 3,
        healthy_after: int = 2,
    ) -> None:
        self.targets = [Target(url) for url in targets]
        self.interval, self.unhealthy_after, self.healthy_after = interval_seconds, unhealthy_after, healthy_after
        self.counts = Counts()
        self.started = time.monotonic()
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.url = ""

    def start(self) -> RoundRobin:
        self._thread = threading.Thread(target=self._run, daemon=True, name="round-robin")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the round robin did not start")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _close(self) -> None:
        self._checks.cancel()
        await self._session.close()
        await self._runner.cleanup()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120, connect=2))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._checks = self._loop.create_task(self._check_health())
        self._ready.set()

    async def _check_health(self) -> None:
        while True:
            await asyncio.gather(*(self._check(target) for target in self.targets))
            self.counts.healthy.append(
                (round(time.monotonic() - self.started, 1), sum(t.healthy for t in self.targets))
            )
            await asyncio.sleep(self.interval)

    async def _check(self, target: Target) -> None:
        try:
            async with self._session.get(target.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as answer:
                ok = answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        target.streak = 0 if ok == target.healthy else target.streak + 1
        if target.streak >= (self.unhealthy_after if target.healthy else self.healthy_after):
            target.healthy, target.streak = ok, 0
            if not ok:
                target.marked_unhealthy_at.append(round(time.monotonic() - self.started, 1))

    async def _forward(self, request: web.Request) -> web.Response:
        self.counts.requests += 1
        healthy = [t for t in self.targets if t.healthy]
        if not healthy:
            self.counts.elb_5xx += 1
            return web.Response(status=503, text="no healthy targets")
        target = healthy[self._next % len(healthy)]
        self._next += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            async with self._session.request(
                request.method, target.url + request.path_qs, headers=headers, data=await request.read()
            ) as answer:
                body = await answer.read()
                if answer.status >= 500:
                    self.counts.target_5xx += 1
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=answer.status, body=body, headers=kept)
        except (aiohttp.ClientError, TimeoutError):  # the target is gone: the balancer's own 502
            self.counts.elb_5xx += 1
            return web.Response(status=502, text="bad gateway")
