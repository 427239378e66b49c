#!/usr/bin/env python3
"""Run a command against a real `alta serve` with a verified owner of one project.

    scripts/clients/with_server.py -- COMMAND [ARGS...]

Starts the `alta` binary cargo built (ALTA_BIN, else $CARGO_TARGET_DIR/debug/alta, else
target/debug/alta) on a free loopback port, with SQLite, local blobs and the mail outbox in
a temporary folder. Signs up an owner through the API (register, the link from the outbox,
verify, login), creates a project, and runs COMMAND with:

    BASE_URL        http://127.0.0.1:PORT
    TOKEN           the owner's access token (a session)
    PROJECT_ID      the owner's project
    OWNER_EMAIL, OWNER_PASSWORD   to sign in again (a second session)
    OUTBOX_DIR      the folder the server writes mail to (*.eml)

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


def start_server(binary, work):
    data_dir = work / "data"
    tmp_dir = work / "tmp"
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
    log_path = work / "server.log"
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


def mailed_link(outbox, address, pattern):
    """The first match of `pattern` in a mail to `address` in the outbox, waiting for the
    mail job to write it."""
    deadline = time.monotonic() + MAIL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for mail in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
            text = mail.read_text(errors="replace")
            if re.search(rf"^To:.*{re.escape(address)}", text, re.MULTILINE | re.IGNORECASE):
                found = re.search(pattern, text)
                if found:
                    return found.group(1)
        time.sleep(0.1)
    die(f"no mail to {address} matching {pattern} in {outbox} within {MAIL_TIMEOUT_SECONDS} s")


def sign_up_owner(base, outbox):
    status, body = request(
        "POST", f"{base}/api/auth/register", {"email": OWNER_EMAIL, "password": OWNER_PASSWORD}
    )
    expect("register the owner", status, body, 201)
    token = mailed_link(outbox, OWNER_EMAIL, r"verify-email\?token=([A-Za-z0-9_-]+)")
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


def main():
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        die("usage: with_server.py -- COMMAND [ARGS...]")
    binary = alta_binary()
    work = pathlib.Path(tempfile.mkdtemp(prefix="alta-clients-"))
    child, base, outbox, log_path = start_server(binary, work)
    code = 1
    try:
        token, project_id = sign_up_owner(base, outbox)
        env = dict(os.environ)
        env.update(
            BASE_URL=base,
            TOKEN=token,
            PROJECT_ID=project_id,
            OWNER_EMAIL=OWNER_EMAIL,
            OWNER_PASSWORD=OWNER_PASSWORD,
            OUTBOX_DIR=str(outbox),
        )
        print(f"with_server: alta serve ({binary}) on {base}, project {project_id}", file=sys.stderr)
        code = subprocess.call(args, env=env)
    finally:
        stop(child)
        if code == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"with_server: kept {work} (server log: {log_path})", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
