#!/usr/bin/env python3
"""Helpers of scripts/clients/prometheus.sh (Python standard library, and PyYAML for `strip`).

    prometheus_check.py strip ALERTS.yml OUT.yml
        The rules without their annotations (texts for people, which `promtool test rules`
        would compare word for word), for the unit tests in dashboards/alerts_test.yml.

    prometheus_check.py check --prometheus URL --base URL --token T --project ID --dashboards DIR
        With a Prometheus scraping the server at --base: puts a short mixed load on the
        server, waits for the scrapes, then asks Prometheus for every panel query of
        DIR/*.json and reads the state of every alert rule. Fails when a query is refused
        (not valid PromQL) or a rule cannot be evaluated; lists the panels that have no
        data under this load, with the reason the README gives where there is one.
"""

import argparse
import glob
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

# Panels that cannot have data on a plain server under a short load, and why.
NO_DATA_EXPECTED = {
    "5xx": "no 5xx under a healthy load",
    "rate-limit": "no request was rate limited",
    "actor failures": "no actor restarted",
    "resumable": "no resumable upload in the load",
    "items by kind": "refreshed on the review monitor's timer (60 s)",
    "google": "Google APIs are not configured",
    "external api": "Google APIs are not configured",
    "passkey": "no passkey ceremonies in the load",
    "redis": "no Redis in this server",
    "rate limiter": "no Redis in this server",
    "circuit": "no Redis in this server",
    "review": "no review in the load",
    "export": "no export in the load",
    "webhook": "no webhook in the load",
    "digest": "no review in the load",
    "untrusted": "no hostile file in the load",
    "extract": "no PDF in the load",
    "dropped": "no command timed out",
    "restart": "no actor restarted",
    "collection": "refreshed on the review monitor's timer (60 s)",
    "audio": "no recording in the load",
    "throttle": "no refused login in the load",
    "started over": "no group commit met a failing transition",
}


def strip(src, out):
    import yaml

    rules = yaml.safe_load(open(src))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    with open(out, "w") as f:
        yaml.safe_dump(rules, f, sort_keys=False)


def call(method, url, body=None, token=None, content_type="application/json"):
    headers = {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        headers["content-type"] = content_type
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def load(base, token, project):
    """A short mixed load: reads, writes, uploads, refusals."""
    for i in range(20):
        call("GET", f"{base}/health")
        call("GET", f"{base}/health/ready")
        call("GET", f"{base}/api/auth/me", token=token)
        call("GET", f"{base}/api/projects", token=token)
        call("GET", f"{base}/api/documents?project_id={project}", token=token)
        call("GET", f"{base}/api/projects/{uuid.uuid4()}", token=token)  # 404
        call("POST", f"{base}/api/projects", json.dumps({"name": ""}).encode(), token)  # 422
        call("POST", f"{base}/api/auth/login",
             json.dumps({"email": "nobody@example.org", "password": "wrong password 1"}).encode())
        boundary = uuid.uuid4().hex
        parts = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"project_id\"\r\n\r\n{project}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d{i}.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nHati ya mzigo {i} {uuid.uuid4()}\r\n--{boundary}--\r\n"
        ).encode()
        call("POST", f"{base}/api/documents", parts, token, f"multipart/form-data; boundary={boundary}")


def query(prometheus, expr):
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, raw = call("GET", url)
    try:
        return json.loads(raw)
    except ValueError:
        return {"status": "error", "error": f"HTTP {status}: {raw[:200]!r}"}


def panels(directory):
    found = []

    def walk(file, items):
        for panel in items:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((file, panel.get("title", "?"), target["expr"]))
            walk(file, panel.get("panels", []))

    for file in sorted(glob.glob(f"{directory}/*.json")):
        walk(file.rsplit("/", 1)[-1], json.load(open(file)).get("panels", []))
    return found


def check(args):
    deadline = time.time() + 60
    while True:
        try:
            if call("GET", f"{args.prometheus}/-/ready")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit("Prometheus did not become ready")
        time.sleep(0.5)
    load(args.base, args.token, args.project)
    # Two scrapes after the load at least, and rule evaluations (every second).
    deadline = time.time() + 60
    while True:
        up = query(args.prometheus, 'up{job="alta"}')
        if up.get("data", {}).get("result") and up["data"]["result"][0]["value"][1] == "1":
            reqs = query(args.prometheus, "sum(http_requests_total)")
            if reqs.get("data", {}).get("result"):
                break
        if time.time() > deadline:
            sys.exit(f"Prometheus never scraped the server: {up}")
        time.sleep(1)
    load(args.base, args.token, args.project)
    time.sleep(5)

    refused, empty, with_data = [], [], 0
    for file, title, expr in panels(args.dashboards):
        concrete = expr.replace("$__rate_interval", "1m").replace("$route", ".*")
        concrete = re.sub(r"\$\{?\w+\}?", ".*", concrete)
        answer = query(args.prometheus, concrete)
        if answer.get("status") != "success":
            refused.append(f"{file}: {title!r}: {answer.get('error')} in {concrete}")
        elif not answer["data"]["result"]:
            why = next((r for k, r in NO_DATA_EXPECTED.items() if k in title.lower()), None)
            empty.append(f"{title!r}" + (f" ({why})" if why else " (no reason known)"))
        else:
            with_data += 1
    rules = json.loads(call("GET", f"{args.prometheus}/api/v1/rules")[1])
    broken = [
        f"{rule['name']}: {rule.get('lastError')}"
        for group in rules["data"]["groups"]
        for rule in group["rules"]
        if rule.get("health") != "ok"
    ]
    count = sum(len(g["rules"]) for g in rules["data"]["groups"])
    print(f"prometheus: {with_data} panel queries with data, {len(empty)} without under this load")
    for line in empty:
        print(f"  no data: {line}")
    print(f"prometheus: {count} alert rules evaluated, {len(broken)} with errors")
    problems = refused + broken
    for line in problems:
        print(f"  FAILED: {line}", file=sys.stderr)
    unexplained = [e for e in empty if e.endswith("(no reason known)")]
    for line in unexplained:
        print(f"  FAILED: a panel without data and no reason for it: {line}", file=sys.stderr)
    if problems or unexplained or count == 0:
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("strip")
    s.add_argument("src")
    s.add_argument("out")
    c = sub.add_parser("check")
    for name in ("--prometheus", "--base", "--token", "--project", "--dashboards"):
        c.add_argument(name, required=True)
    args = parser.parse_args()
    if args.command == "strip":
        strip(args.src, args.out)
    else:
        check(args)


if __name__ == "__main__":
    main()
