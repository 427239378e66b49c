#!/usr/bin/env python3
"""Run a command against a real `alta serve` with a verified owner of one project.

    scripts/clients/with_server.py [--nodes 2] -- COMMAND [ARGS...]

Starts the `alta` binary cargo built (ALTA_BIN, else $CARGO_TARGET_DIR/debug/alta, else
target/debug/alta) on a free loopback port, with SQLite, local blobs and the mail outbox in
a temporary folder. Signs up an owner through the API (register, the link from the outbox,
verify, login), creates a project, and runs COMMAND with:

    BASE_URL        http://127.0.0.1:PORT
    TOKEN           the owner's access token (a session)
    PROJECT_ID      the owner's project
    OWNER_EMAIL, OWNER_PASSWORD   to sign in again (a second session)
    OUTBOX_DIR      the folder the server writes mail to (*.eml)

With `--nodes 2`, two servers share one PostgreSQL schema, one Redis and one bucket of the
Cloud Storage emulator with MULTI_NODE=true (TEST_DATABASE_URL, TEST_REDIS_URL and
TEST_GCS_ENDPOINT, which scripts/test sets; psql makes and drops the schema), each with a
data folder of its own, and COMMAND also gets SECOND_BASE_URL, the second node.

The server is stopped afterwards; its exit code is COMMAND's. On failure the temporary
folder (server log, database, outbox) is kept and named. Python standard library only.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

OWNER_EMAIL = "owner@example.org"
OWNER_PASSWORD = "violet tangent harbour 42"
START_TIMEOUT_SECONDS = 60
MAIL_TIMEOUT_SECONDS = 30


def die(message):
    print(f"scripts/clients/with_server.py: {message}", file=sys.stderr)
    sys.exit(2)


def alta_binary():
    explicit = os.environ.get("ALTA_BIN")
    if explicit:
        path = pathlib.Path(explicit)
    else:
        repo = pathlib.Path(__file__).resolve().parents[2]
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", repo / "target"))
        path = target / "debug" / "alta"
    if not (path.is_file() and os.access(path, os.X_OK)):
        die(
            f"the alta binary is missing at {path}: build it first (`cargo build --bin alta`, "
            "or `scripts/test`, which builds it for the tests) or set ALTA_BIN"
        )
    return path


def request(method, url, body=None, token=None):
    """(status, parsed JSON or None); never raises for an HTTP status."""
    headers = {"accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw = err.read()
        status = err.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def expect(what, status, body, wanted):
    if status != wanted:
        die(f"{what}: expected {wanted}, got {status}: {body}")
    return body


def start_server(binary, work, name="data", shared=None):
    data_dir = work / name
    tmp_dir = work / f"{name}-tmp"
    data_dir.mkdir()
    tmp_dir.mkdir()
    env = {
        # A clean environment: nothing of the caller's (DATABASE_URL, REDIS_URL…) leaks in.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(work)),
        "TMPDIR": str(tmp_dir),
        "APP_ENV": "development",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite://{data_dir / 'alta.db'}?mode=rwc",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOG_FORMAT": "json",
        "RUST_LOG": "info,sqlx=warn",
        # Fuzzers sign in and sign up far more often than people do.
        "RATE_LIMIT_AUTH_PER_IP": "100000/min",
        "RATE_LIMIT_AUTH_PER_ACCOUNT": "100000/min",
        "REGISTER_MAIL_INTERVAL_SECONDS": "0",
        "JOB_POLL_INTERVAL_MS": "200",
    }
    env.update(shared or {})
    log_path = work / f"{name}-server.log"
    log = open(log_path, "wb")
    child = subprocess.Popen(
        [str(binary), "serve"],
        cwd=data_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    port = None
    while port is None:
        if child.poll() is not None:
            die(f"alta serve exited ({child.returncode}) before serving; log: {log_path}")
        if time.monotonic() > deadline:
            child.kill()
            die(f"alta serve never logged its port; log: {log_path}")
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                fields = json.loads(line).get("fields", {})
            except ValueError:
                continue
            if fields.get("message") == "serving" and fields.get("port"):
                port = int(fields["port"])
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            status, _ = request("GET", f"{base}/health")
            if status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            child.kill()
            die(f"GET /health never answered 200; log: {log_path}")
        time.sleep(0.05)
    return child, base, data_dir / "outbox", log_path


def mailed_link(outboxes, address, pattern):
    """The first match of `pattern` in a mail to `address` in the outboxes (any node's
    mail worker may send it), waiting for the mail job to write it."""
    deadline = time.monotonic() + MAIL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        mails = [m for o in outboxes if o.is_dir() for m in sorted(o.glob("*.eml"))]
        for mail in mails:
            text = mail.read_text(errors="replace")
            if re.search(rf"^To:.*{re.escape(address)}", text, re.MULTILINE | re.IGNORECASE):
                found = re.search(pattern, text)
                if found:
                    return found.group(1)
        time.sleep(0.1)
    die(f"no mail to {address} matching {pattern} in {outboxes} within {MAIL_TIMEOUT_SECONDS} s")


def sign_up_owner(base, outboxes):
    status, body = request(
        "POST", f"{base}/api/auth/register", {"email": OWNER_EMAIL, "password": OWNER_PASSWORD}
    )
    expect("register the owner", status, body, 201)
    token = mailed_link(outboxes, OWNER_EMAIL, r"verify-email\?token=([A-Za-z0-9_-]+)")
    status, body = request("GET", f"{base}/api/auth/verify-email?token={token}")
    expect("verify the owner's email", status, body, 200)
    status, body = request(
        "POST", f"{base}/api/auth/login", {"email": OWNER_EMAIL, "password": OWNER_PASSWORD}
    )
    access = expect("log the owner in", status, body, 200)["access_token"]
    status, body = request(
        "POST", f"{base}/api/projects", {"name": "Real clients"}, token=access
    )
    project_id = expect("create the owner's project", status, body, 201)["id"]
    return access, project_id


def stop(child):
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=40)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def psql(url, sql):
    result = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        die(f"psql {sql!r} failed: {result.stderr.strip()}")


def required_env(name):
    value = os.environ.get(name)
    if not value:
        die(f"--nodes 2 needs {name} (scripts/test sets it)")
    return value


def shared_settings(work):
    """Settings every node of a two-node run shares, and how to clean up after it."""
    if not shutil.which("psql"):
        die("--nodes 2 needs psql to make a schema (apt-get install postgresql-client)")
    database = required_env("TEST_DATABASE_URL")
    redis = required_env("TEST_REDIS_URL")
    gcs = required_env("TEST_GCS_ENDPOINT")
    schema = f"clients_{uuid.uuid4().hex[:12]}"
    psql(database, f'CREATE SCHEMA "{schema}"')
    bucket = f"alta-clients-{uuid.uuid4().hex[:12]}"
    try:
        status, body = request("POST", f"{gcs}/storage/v1/b?project=test", {"name": bucket})
    except OSError as err:
        die(f"the Cloud Storage emulator is not answering at TEST_GCS_ENDPOINT={gcs}: {err}")
    if not 200 <= status < 300:
        die(f"the Cloud Storage emulator refused to create a bucket: {status} {body}")
    sep = "&" if "?" in database else "?"
    settings = {
        "DATABASE_URL": f"{database}{sep}options=-c%20search_path%3D{schema}",
        "MULTI_NODE": "true",
        "REDIS_URL": redis,
        "REDIS_KEY_PREFIX": f"clients:{schema}:",
        "GCS_BUCKET_NAME": bucket,
        "GCS_ENDPOINT": gcs,
        "GCS_ANONYMOUS": "true",
        "SECRET_KEY": f"clients-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "PUBLIC_URL": "http://127.0.0.1",
    }
    return settings, lambda: psql(database, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main():
    args = sys.argv[1:]
    nodes = 1
    if args[:1] == ["--nodes"] and len(args) > 1:
        nodes = int(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or nodes not in (1, 2):
        die("usage: with_server.py [--nodes 2] -- COMMAND [ARGS...]")
    binary = alta_binary()
    work = pathlib.Path(tempfile.mkdtemp(prefix="alta-clients-"))
    shared, cleanup = (None, None)
    if nodes == 2:
        shared, cleanup = shared_settings(work)
    servers = [start_server(binary, work, "data", shared)]
    if nodes == 2:
        servers.append(start_server(binary, work, "data-b", shared))
    child, base, outbox, log_path = servers[0]
    code = 1
    try:
        token, project_id = sign_up_owner(base, [s[2] for s in servers])
        env = dict(os.environ)
        env.update(
            BASE_URL=base,
            TOKEN=token,
            PROJECT_ID=project_id,
            OWNER_EMAIL=OWNER_EMAIL,
            OWNER_PASSWORD=OWNER_PASSWORD,
            OUTBOX_DIR=str(outbox),
        )
        if nodes == 2:
            env["SECOND_BASE_URL"] = servers[1][1]
        bases = " and ".join(s[1] for s in servers)
        print(f"with_server: alta serve ({binary}) on {bases}, project {project_id}", file=sys.stderr)
        code = subprocess.call(args, env=env)
    finally:
        for server in servers:
            stop(server[0])
        if cleanup:
            cleanup()
        if code == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"with_server: kept {work} (server logs: {work}/*-server.log)", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
