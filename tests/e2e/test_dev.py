"""`salon dev` (behind `make run`) on a machine with no servers: embedded PostgreSQL and Redis,
demo data, all processes, a ready-made token; Ctrl-C stops everything."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import psutil

from tests.e2e.conftest import free_port, wait_http


def test_salon_dev_starts_everything_on_embedded_servers_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["SALON_DATA_DIR"] = str(tmp_path / "data")
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "salon", "dev", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120)
        deadline = time.monotonic() + 20
        while "Admin token" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log.read_text()
        assert f"http://127.0.0.1:{port}/docs" in text
        token = re.search(r"Admin token[^\n]*\n(\S+)", text)
        assert token, text[-3000:]
        resp = httpx.get(
            f"http://127.0.0.1:{port}/admin/v1/locations",
            headers={"Authorization": f"Bearer {token.group(1)}"},
        )
        assert resp.status_code == 200
        zones = sorted(i["timezone"] for i in resp.json()["items"])
        assert zones == ["America/New_York", "Asia/Dubai", "Europe/London"]
        stylists = httpx.get(
            f"http://127.0.0.1:{port}/v1/locations/00000000-0000-0000-0000-000000000011/stylists"
        ).json()["items"]
        assert len(stylists) == 2  # Harriet and Leila, who also works in Dubai
        # The demo has working hours: the scheduler generates slots at start-up, and a
        # customer sees bookable times (Soho Salon, men's cut) within a few seconds.
        dates_url = (
            f"http://127.0.0.1:{port}/v1/dates?from={dt.date.today().isoformat()}&days=14"
            "&location_id=00000000-0000-0000-0000-000000000011"
            "&service_id=00000000-0000-0000-0000-000000000032"
        )
        deadline = time.monotonic() + 60
        bookable = 0
        while bookable == 0 and time.monotonic() < deadline:
            dates = httpx.get(dates_url)
            assert dates.status_code == 200, dates.text
            bookable = sum(d["total_slots"] for d in dates.json()["dates"])
            time.sleep(0.5)
        assert bookable > 0, log.read_text()[-3000:]
        created = httpx.post(
            f"http://127.0.0.1:{port}/admin/v1/locations",
            json={"name": "Tokyo", "timezone": "Asia/Tokyo"},
            headers={"Authorization": f"Bearer {token.group(1)}", "Idempotency-Key": "dev-1"},
        )
        assert created.status_code == 201, log.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert "stopped" in log.read_text()
    # Nothing is left running: no server of the data dir, nothing listening.
    data_dir = str(tmp_path / "data")
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any(data_dir in part for part in (p.info["cmdline"] or []))
    ]
    assert leftovers == []
    # Nor any process started with this data dir in its environment (gunicorn workers...).
    started_here = []
    for proc_ in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if proc_.environ().get("SALON_DATA_DIR") == data_dir:
                started_here.append(proc_.pid)
    assert started_here == []
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        raise AssertionError("the API still answers after Ctrl-C")
    except httpx.TransportError:
        pass
