"""How much do the scenarios cost the load generator?  Requests/s of ONE Locust process.

Runs, against the same fast static target on 127.0.0.1, for the same duration and
with no think time:

1. a bare ``FastHttpUser`` doing plain GETs (the ceiling of one Locust process), and
2. ``AgenticPlatformUser`` through ``scenarios/locustfile.py`` with a credentials pool
   (discovery of the v1 dialect from the reference platform's own OpenAPI document, the
   warm-up, checkout, JSON login, bearer headers, v1 create bodies with slugs, answer
   checks, JSON parsing, task weights, and the platform ``/metrics`` scraped every 5 s);

and prints both rates and their ratio (goal: >= 70 % of the bare rate).

The target is nginx (Debian's ``nginx-light``/``nginx``, ``apt-get install -y nginx-light``)
answering canned JSON that satisfies every endpoint (and the OpenAPI document and a small
Prometheus text at their paths), started on a free loopback port with one worker process;
without nginx, a tiny asyncio server stands in (it is slower and answers one body
everywhere, so discovery falls back to the guide dialect and the ratio says less).  Usage::

    /tmp/venv/bin/python bench/scenario_bench.py [--users 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))
CANNED = json.dumps(
    {
        "access_token": "bench-token",
        "token_type": "bearer",
        "id": "a-1",
        "status": "ok",
        "agents": [{"id": "a-1", "name": "agent"}],
        "data": [{"id": "a-1", "name": "agent"}],
        "workflows": [],
        "collections": [],
        "servers": [],
        "total": 1,
        "offset": 0,
        "limit": 20,
    },
    separators=(",", ":"),
)
BARE_LOCUSTFILE = textwrap.dedent(
    """
    from locust import FastHttpUser, constant, task

    class BareUser(FastHttpUser):
        wait_time = constant(0)

        @task
        def get(self):
            self.client.get("/api/v1/agents")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(workdir: Path, port: int) -> subprocess.Popen[bytes] | None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        return None
    (workdir / "logs").mkdir(exist_ok=True)
    write_documents(workdir)
    conf = workdir / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""{user}worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {workdir}/body;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/openapi.json {{
            default_type application/json;
            alias {workdir}/openapi.json;
        }}
        location = /metrics {{
            default_type text/plain;
            alias {workdir}/metrics.txt;
        }}
        location / {{
            default_type application/json;
            return 200 '{CANNED}';
        }}
    }}
}}
"""
    )
    return subprocess.Popen([binary, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"])


METRICS_TEXT = (
    "process_resident_memory_bytes 1.5e+08\nprocess_cpu_seconds_total 12.5\n"
    "db_connection_pool_size 2.0\ndb_connection_pool_max 10.0\n"
)


def write_documents(workdir: Path) -> None:
    """The reference platform's v1 OpenAPI document and a Prometheus text, for nginx to serve."""
    from agentic_loadkit.reference_platform.app import create_app
    from agentic_loadkit.reference_platform.settings import PlatformSettings

    app = create_app(PlatformSettings(database_url="postgresql://bench@127.0.0.1/bench"), dialect="v1")
    (workdir / "openapi.json").write_text(json.dumps(app.openapi()))
    (workdir / "metrics.txt").write_text(METRICS_TEXT)


ASYNC_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    BODY = sys.argv[2].encode()
    HEAD = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(BODY)

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = 0
                for line in head.split(b"\\r\\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                writer.write(HEAD + BODY)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)


def start_target(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    proc = start_nginx(workdir, port)
    kind = "nginx"
    if proc is None:
        script = workdir / "static_server.py"
        script.write_text(ASYNC_SERVER)
        proc = subprocess.Popen([sys.executable, str(script), str(port), CANNED])
        kind = "asyncio static server (nginx not installed)"
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                resp.read()
            return proc, url, kind
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit(f"The static target ({kind}) did not start on {url}.") from None
            time.sleep(0.05)


def write_pool(workdir: Path, accounts: int, tenants: int) -> Path:
    run_dir = workdir / "run"
    run_dir.mkdir()
    with (run_dir / "credentials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "password", "tenant_id", "tenant_slug", "user_id", "role"])
        for i in range(accounts):
            writer.writerow(
                [f"bench{i}@example.test", "bench-password", f"t-{i % tenants}", f"t{i % tenants}", f"u-{i}", "member"]
            )
    manifest = {
        "format": 1,
        "run_id": "bench",
        "label": None,
        "scale": "bench",
        "seed": 0,
        "fingerprint": "bench",
        "toolkit_version": "bench",
        "created_at": "2025-01-01T00:00:00+00:00",
        "target": "none",
        "counts": {
            "tenants": tenants,
            "users": accounts,
            "agents": tenants * 5,
            "workflows": 0,
            "collections": 0,
            "mcp_servers": 0,
        },
        "credentials": "credentials.csv",
        "tenants": [
            {
                "id": f"t-{t}",
                "slug": f"t{t}",
                "name": f"T{t}",
                "active_users": accounts // tenants,
                "agents": [f"a-{t}-{k}" for k in range(5)],
                "workflows": [],
                "collections": [],
                "mcp_servers": [],
            }
            for t in range(tenants)
        ],
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


@dataclass(frozen=True)
class Measurement:
    rps: float  # requests per wall-clock second of the measured window
    requests: int
    cpu_s: float  # CPU seconds (user + system) of the whole Locust process, start-up included

    @property
    def requests_per_cpu_s(self) -> float:
        return self.requests / self.cpu_s if self.cpu_s else 0.0


def run_locust(args: list[str], cwd: Path, seconds: int) -> Measurement:
    """Run one headless Locust process; its rate over the measured window and the CPU it used."""
    cmd = [LOCUST, *args, "--headless", "--only-summary", "--json", "-t", f"{seconds}s", "--loglevel", "WARNING"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        entries = json.loads(proc.stdout[proc.stdout.index("[") :])
    except ValueError:
        raise SystemExit(f"Locust printed no statistics (exit {proc.returncode}): {proc.stderr[-2000:]}") from None
    requests = sum(e["num_requests"] for e in entries)
    start = min(e["start_time"] for e in entries)
    last = max(e["last_request_timestamp"] or 0 for e in entries)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(requests / (last - start) if last > start else 0.0, requests, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/ours rounds (median reported)")
    args = parser.parse_args(argv)
    bare_runs: list[Measurement] = []
    our_runs: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="scenario-bench-") as tmp:
        workdir = Path(tmp)
        target, url, kind = start_target(workdir)
        try:
            bare_file = workdir / "bare_locustfile.py"
            bare_file.write_text(BARE_LOCUSTFILE)
            pool = write_pool(workdir, accounts=max(args.users, 1) * 2, tenants=4)
            common = ["-u", str(args.users), "-r", str(args.users), "--host", url]
            ours_args = [
                "-f",
                str(REPO / "scenarios" / "locustfile.py"),
                *common,
                "--credentials",
                str(pool),
                "--wait-time",
                "0",
                "--no-gate",
                "AgenticPlatformUser",
            ]
            for _ in range(args.rounds):  # alternate, so that a busy moment of the machine hits both
                bare_runs.append(run_locust(["-f", str(bare_file), *common], workdir, args.seconds))
                our_runs.append(run_locust(ours_args, workdir, args.seconds))
        finally:
            target.terminate()
            target.wait(timeout=10)
    bare = statistics.median(m.rps for m in bare_runs)
    ours = statistics.median(m.rps for m in our_runs)
    bare_cpu = statistics.median(m.requests_per_cpu_s for m in bare_runs)
    ours_cpu = statistics.median(m.requests_per_cpu_s for m in our_runs)
    print(
        f"target: {kind} on {url}; one Locust process, {args.users} users, {args.seconds} s per run, "
        f"no think time, {args.rounds} alternating rounds (median)"
    )
    print(f"bare FastHttpUser (plain GETs):          {bare:7.0f} req/s {_rounds(bare_runs)}; {bare_cpu:6.0f} req/CPU-s")
    print(f"AgenticPlatformUser (pool, login, mix):  {ours:7.0f} req/s {_rounds(our_runs)}; {ours_cpu:6.0f} req/CPU-s")
    print(
        f"ratio: {ours / bare if bare else 0:.0%} of the bare rate (goal >= 70 %); "
        f"{ours_cpu / bare_cpu if bare_cpu else 0:.0%} per CPU second (start-up included)"
    )
    return 0


def _rounds(runs: list[Measurement]) -> str:
    return "(" + ", ".join(f"{m.rps:.0f}" for m in runs) + ")"


if __name__ == "__main__":
    sys.exit(main())
