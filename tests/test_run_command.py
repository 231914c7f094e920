"""`herald run` as a newcomer starts it: no configuration, sandbox mode, clean shutdown."""

from __future__ import annotations

import aiohttp

from tests.conftest import Database
from tests.service_process import ServiceProcess


async def test_run_without_configuration_serves_health_and_stops_on_sigterm(
    db: Database, tmp_path: object
) -> None:
    """With no token the service starts its sandbox, answers /healthz, and exits 0 on SIGTERM."""
    from pathlib import Path

    workdir = Path(str(tmp_path))
    service = ServiceProcess(
        workdir,
        {
            "DATABASE_URL": db.url,
            "PORT": "0",
            "TELEGRAM_SANDBOX_PORT": "0",
            "DATA_DIR": str(workdir / "data"),
            "TELEGRAM_BOT_TOKEN": "",
        },
    )
    await service.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{service.port}/healthz") as response,
        ):
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        assert any("SANDBOX" in line.upper() for line in service.log)
        assert await service.terminate() == 0
    finally:
        await service.kill()
    assert not any("Traceback" in line for line in service.log)
