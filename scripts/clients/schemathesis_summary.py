#!/usr/bin/env python3
"""One line per failing (check, operation) from schemathesis NDJSON reports:

    scripts/clients/schemathesis_summary.py REPORT_DIR

with the status and problem `code` the server answered most often, and schemathesis's
message. schemathesis.sh prints it after a failing run; the full detail stays above it.
Exits 1 when there is any failure.
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


def main(report_dir):
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
    by_check = collections.defaultdict(list)
    for (code, title, operation), seen in failures.items():
        by_check[f"{code} {title}"].append((operation, seen))
    for check, operations in sorted(by_check.items()):
        print(f"{check}: {len(operations)} operations")
        for operation, seen in sorted(operations):
            status = collections.Counter(s for s, _ in seen).most_common(1)[0][0]
            print(f"  {operation}: {status}: {seen[0][1][:220]}")
    print(f"schemathesis: {len(failures)} failing (check, operation) pair(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: schemathesis_summary.py REPORT_DIR")
    sys.exit(main(*sys.argv[1:]))
