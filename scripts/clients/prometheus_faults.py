#!/usr/bin/env python3
"""Faults a real server goes through, and the alerts a real Prometheus fires for them.

    prometheus_faults.py --rules dashboards/alerts.yml

Part of scripts/clients/prometheus.sh. Starts, in a temporary folder:
  - a Redis of its own (redis-server on a free port), which it kills half-way;
  - a PostgreSQL database of its own on TEST_DATABASE_URL's server (made with psql,
    dropped afterwards), whose connections it cuts at the end;
  - the alta binary cargo built on them, as two processes of one deployment: a node that
    serves the API only (`alta serve` with SERVE_WORKERS=false, as
    scripts/clients/with_server.py starts it) and an `alta worker`, which sends mail to an
    SMTP port where nothing listens, one attempt a job;
  - Prometheus (`prometheus` on the PATH) scraping both every second, with the alert rules
    of --rules in which every `for` is 0s (the unit tests in dashboards/alerts_test.yml
    check the `for`s; here an alert fires at its first true evaluation).
Then, one fault after the other, it waits (bounded) for each alert to fire:
  - a mail that cannot be sent: its job fails for good  -> AltaJobsFailing
  - the worker killed (SIGKILL), a job queued 20 minutes ago with nobody to run it
    (written into the jobs table): the API node's gauges -> AltaJobQueueStalled
  - Redis killed, readiness probed as a load balancer does -> AltaRedisDegraded
  - the database refusing connections, requests going on  -> AltaDatabaseUnreachable,
                                                             AltaHigh5xxRatio
Alerts that must not fire under these faults are checked too (AltaActorRestartLoop).
Needs psql, redis-server and prometheus; PyYAML for the rules. Exit 1 naming the alert
that did not fire (or fired when it must not), with the server's and Prometheus's logs.
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import with_server  # noqa: E402  (alta_binary, start_server, stop, psql, request)

FIRE_TIMEOUT_SECONDS = 90


def fail(message):
    print(f"scripts/clients/prometheus_faults.py: {message}", file=sys.stderr)
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rules_firing_at_once(src, out):
    """The rules with every `for` set to 0s."""
    import yaml

    rules = yaml.safe_load(open(src))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    with open(out, "w") as f:
        yaml.safe_dump(rules, f, sort_keys=False)


def database_url(server_url, name):
    """TEST_DATABASE_URL's server, with the database `name`."""
    parts = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


class Faults:
    def __init__(self, args):
        self.args = args
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="alta-faults-"))
        self.children = []
        self.server = None
        self.prometheus = None
        self.database = None
        self.admin_url = os.environ.get("TEST_DATABASE_URL")
        if not self.admin_url:
            fail("TEST_DATABASE_URL is not set (scripts/test sets it)")
        for tool in ("psql", "redis-server", "prometheus"):
            if not shutil.which(tool):
                fail(f"{tool} is missing (scripts/test and prometheus.sh install it)")

    # --- what runs ---------------------------------------------------------------------

    def start_redis(self):
        port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.work)],
            stdout=open(self.work / "redis.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        self.children.append(self.redis)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"redis://127.0.0.1:{port}"
            except OSError:
                if time.monotonic() > deadline:
                    fail("the fault test's redis-server did not start")
                time.sleep(0.1)

    def make_database(self):
        self.database = f"alta_faults_{uuid.uuid4().hex[:12]}"
        with_server.psql(self.admin_url, f'CREATE DATABASE "{self.database}"')
        return database_url(self.admin_url, self.database)

    def start_nodes(self, redis_url, db_url):
        settings = {
            "DATABASE_URL": db_url,
            "MULTI_NODE": "true",
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"faults:{self.database}:",
            # Nothing listens there: every mail fails, and one attempt is all a job gets.
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(free_port()),
            "SMTP_TIMEOUT_SECONDS": "2",
            "JOB_MAX_ATTEMPTS": "1",
            "SECRET_KEY": f"faults-{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "PUBLIC_URL": "http://127.0.0.1",
        }
        binary = with_server.alta_binary()
        api_only = dict(settings, SERVE_WORKERS="false")
        child, base, _, log = with_server.start_server(binary, self.work, "faults", api_only)
        self.server, self.base, self.server_log = child, base, log
        # The worker: the same settings, a data folder of its own, metrics on a port.
        data_dir = self.work / "worker"
        data_dir.mkdir()
        metrics_port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(self.work)),
            "APP_ENV": "development",
            "DATA_DIR": str(data_dir),
            "HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
            "RUST_LOG": "info,sqlx=warn",
            "JOB_POLL_INTERVAL_MS": "200",
            "WORKER_METRICS_PORT": str(metrics_port),
            **settings,
        }
        self.worker = subprocess.Popen(
            [str(binary), "worker"],
            cwd=data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(self.work / "worker.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        self.children.append(self.worker)
        self.worker_metrics = f"127.0.0.1:{metrics_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if with_server.request("GET", f"http://{self.worker_metrics}/health")[0] == 200:
                    break
            except OSError:
                pass
            if self.worker.poll() is not None or time.monotonic() > deadline:
                fail("alta worker did not start (see worker.log)")
            time.sleep(0.1)

    def start_prometheus(self):
        rules_firing_at_once(self.args.rules, self.work / "alerts.yml")
        port = free_port()
        (self.work / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files: [alerts.yml]\n"
            "scrape_configs:\n  - job_name: alta\n    static_configs:\n"
            f"      - targets: [\"{self.base.removeprefix('http://')}\", "
            f"\"{self.worker_metrics}\"]\n"
        )
        self.prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={self.work / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=open(self.work / "prometheus.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        self.children.append(self.prometheus)
        self.prom = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if with_server.request("GET", f"{self.prom}/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail("Prometheus did not become ready")
            time.sleep(0.5)

    def cleanup(self, failed):
        if self.server:
            with_server.stop(self.server)
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
        if self.database:
            subprocess.run(
                ["psql", self.admin_url, "-q", "-c",
                 f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true'],
                capture_output=True,
            )
            subprocess.run(
                ["psql", self.admin_url, "-q", "-c",
                 f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'],
                capture_output=True,
            )
        if failed:
            for name in ("faults-server.log", "worker.log", "prometheus.log"):
                path = self.work / name
                if path.exists():
                    print(f"--- last lines of {name}", file=sys.stderr)
                    lines = path.read_text(errors="replace").splitlines()
                    print("\n".join(lines[-25:]), file=sys.stderr)
        shutil.rmtree(self.work, ignore_errors=True)

    # --- what is checked ---------------------------------------------------------------

    def alerts(self):
        status, body = with_server.request("GET", f"{self.prom}/api/v1/alerts")
        if status != 200 or not body:
            return {}
        return {a["labels"]["alertname"]: a for a in body["data"]["alerts"]
                if a.get("state") == "firing"}

    def wait_for(self, name, keep_up=None):
        """Until the alert `name` fires; `keep_up()` runs between looks (probes, load)."""
        started = time.monotonic()
        while time.monotonic() - started < FIRE_TIMEOUT_SECONDS:
            if keep_up:
                keep_up()
            firing = self.alerts()
            if name in firing:
                took = time.monotonic() - started
                labels = {k: v for k, v in firing[name]["labels"].items()
                          if k not in ("alertname", "severity")}
                print(f"prometheus faults: {name} fired after {took:.0f} s {labels}")
                return firing[name]
            time.sleep(1)
        fail(f"{name} did not fire within {FIRE_TIMEOUT_SECONDS} s; firing: {sorted(self.alerts())}")

    def probe_readiness(self):
        try:
            with_server.request("GET", f"{self.base}/health/ready")
        except OSError:
            pass

    def requests_under_outage(self):
        """A load balancer's probes and users' requests while the database is away."""
        self.probe_readiness()
        for _ in range(10):
            try:
                with_server.request(
                    "POST", f"{self.base}/api/auth/login",
                    {"email": "someone@example.org", "password": "not the password 12"},
                )
            except OSError:
                pass

    def run(self):
        redis_url = self.start_redis()
        db_url = self.make_database()
        self.start_nodes(redis_url, db_url)
        self.start_prometheus()

        # Mail that cannot be sent: each job's only attempt fails, and it is failed for
        # good. People go on signing up (a counter's first value is no rate yet).
        def sign_up():
            status, body = with_server.request(
                "POST", f"{self.base}/api/auth/register",
                {"email": f"f{uuid.uuid4().hex[:10]}@example.org",
                 "password": "violet tangent harbour 42"},
            )
            if status != 201:
                fail(f"register: {status} {body}")

        self.wait_for("AltaJobsFailing", keep_up=sign_up)

        # Every worker is gone; a job has waited 20 minutes with nobody to run it. Only
        # the API node is left to say so.
        self.worker.kill()
        self.worker.wait()
        payload = json.dumps({"export_id": str(uuid.uuid4()), "project_id": str(uuid.uuid4())})
        with_server.psql(
            db_url,
            "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, "
            "created_at, updated_at) VALUES "
            f"('{uuid.uuid4()}', 'export', '{payload}', 'queued', 0, 8, "
            "now() - interval '20 minutes', now() - interval '20 minutes', now())",
        )
        alert = self.wait_for("AltaJobQueueStalled")
        if alert["labels"].get("kind") != "export":
            fail(f"AltaJobQueueStalled names kind {alert['labels'].get('kind')!r}, not export")

        # Redis goes away; the node stays ready, degraded, and says so on every probe.
        self.redis.kill()
        self.redis.wait()
        self.wait_for("AltaRedisDegraded", keep_up=self.probe_readiness)

        # The database refuses connections: readiness fails and requests get 5xx.
        with_server.psql(self.admin_url, f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        with_server.psql(
            self.admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()",
        )
        self.wait_for("AltaDatabaseUnreachable", keep_up=self.requests_under_outage)
        self.wait_for("AltaHigh5xxRatio", keep_up=self.requests_under_outage)

        # Nothing restarted over and over: the faults are outside, the tree held.
        wrongly = [name for name in ("AltaActorRestartLoop",) if name in self.alerts()]
        if wrongly:
            fail(f"fired, but must not under these faults: {wrongly}")
        print(f"prometheus faults: every alert fired; firing now: {sorted(self.alerts())}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", required=True)
    args = parser.parse_args()
    faults = Faults(args)
    failed = True
    try:
        faults.run()
        failed = False
    finally:
        faults.cleanup(failed)


if __name__ == "__main__":
    main()
