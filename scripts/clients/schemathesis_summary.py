#!/usr/bin/env python3
"""One line per failing (check, operation) from schemathesis NDJSON reports:

    scripts/clients/schemathesis_summary.py REPORT_DIR [KNOWN_FAILURES_FILE]

with the status and problem `code` the server answered most often, and schemathesis's
message. schemathesis.sh prints it after a failing run; the full detail stays above it.

With KNOWN_FAILURES_FILE (lines `CHECK METHOD PATH`, `#` comments): failures listed
there are the open remainder of the API-contract issue and are reported as known; any
other failure makes the exit status 1. A known failure that no longer happens is
reported too, so the list only shrinks.
"""

import base64
import collections
import json
import pathlib
import re
import sys


def answer(interaction):
    response = (interaction or {}).get("response") or {}
    content = response.get("content") or {}
    raw = base64.b64decode(content.get("$base64", "")).decode("utf8", "replace")
    code = re.search(r'"code":"([a-z_]+)"', raw)
    return f"{response.get('status_code', '?')} {code.group(1) if code else ''}".strip()


def read_known(path):
    known = set()
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            check, operation = line.split(" ", 1)
            known.add((check, operation.strip()))
    return known


def main(report_dir, known_path=None):
    failures = collections.defaultdict(list)
    for path in sorted(pathlib.Path(report_dir).glob("*.ndjson")):
        for line in path.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder") or {}
            interactions = recorder.get("interactions") or {}
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if check["status"] != "failure":
                        continue
                    failure = check["failure_info"]["failure"]
                    message = " ".join(failure["message"].split())
                    failures[(failure["code"], failure["title"], failure["operation"])].append(
                        (answer(interactions.get(case_id)), message)
                    )
    known = read_known(known_path) if known_path else set()
    by_check = collections.defaultdict(list)
    for (code, title, operation), seen in failures.items():
        by_check[f"{code} {title}"].append((operation, seen, (code, operation) in known))
    new_failures = 0
    for check, operations in sorted(by_check.items()):
        print(f"{check}: {len(operations)} operations")
        for operation, seen, is_known in sorted(operations):
            status = collections.Counter(s for s, _ in seen).most_common(1)[0][0]
            mark = "known" if is_known else "NEW"
            new_failures += not is_known
            print(f"  [{mark}] {operation}: {status}: {seen[0][1][:220]}")
    seen_keys = {(code, operation) for code, _, operation in failures}
    for check, operation in sorted(known - seen_keys):
        print(f"no longer failing (remove it from the known list): {check} {operation}")
    if known_path:
        print(f"schemathesis: {new_failures} new failure(s), {len(seen_keys) - new_failures} known")
    return 1 if new_failures else 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: schemathesis_summary.py REPORT_DIR [KNOWN_FAILURES_FILE]")
    sys.exit(main(*sys.argv[1:]))
