#!/usr/bin/env python3
"""Read an Alta Data export the way its users do, and compare it with what is expected.

    check_export.py --format jsonl|csv|hf|webdataset|zip --path PATH --expect EXPECT.json

EXPECT.json maps each item id that must be in the export (once) to what its row must
say: {"sha256": ..., "text": ..., "kind"?: ..., "sampling_rate"?: ..., "split"?: ...}.

- jsonl: Python's json module, line by line.
- csv: Python's csv module (DictReader).
- hf: Hugging Face `datasets`: load_dataset("audiofolder", data_dir=PATH) as it is; each
  row's audio decodes (soundfile) at its file's sampling rate, its text and split are
  the expected ones, and the file's sha256 matches.
- webdataset: the `webdataset` library iterates every `shard-*.tar` in PATH; each sample
  (key = item id) has its `json` row and its file, whose sha256 matches.
- zip: Python's `zipfile` opens the archive at PATH, checks every entry's CRC
  (`testzip`), reads `manifest.jsonl` and each `files/{id}.*`, whose sha256 matches.

Run by tests/api/exports.rs with the venv scripts/test makes (datasets, soundfile).
Exits 0 and prints a summary when everything matches; 1 with the differences otherwise.
"""

import argparse
import csv
import hashlib
import json
import pathlib
import sys

problems = []


def expect(condition, message):
    if not condition:
        problems.append(message)


def check_rows(rows, expected, fields):
    ids = [row["id"] for row in rows]
    expect(len(ids) == len(set(ids)), f"an item appears twice: {sorted(ids)}")
    expect(set(ids) == set(expected), f"ids {sorted(ids)} != expected {sorted(expected)}")
    for row in rows:
        want = expected.get(row["id"])
        if want is None:
            continue
        for field in fields:
            if field in want:
                expect(
                    str(row.get(field)) == str(want[field]),
                    f"{row['id']}: {field} is {row.get(field)!r}, expected {want[field]!r}",
                )


def check_jsonl(path, expected):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    check_rows(rows, expected, ["sha256", "text", "kind"])
    return len(rows)


def check_csv(path, expected):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    check_rows(rows, expected, ["sha256", "text", "kind"])
    for row in rows:
        expect(row["contributor"].startswith("c_"), f"{row['id']}: contributor {row['contributor']!r}")
    return len(rows)


def check_hf(path, expected):
    import datasets

    loaded = datasets.load_dataset("audiofolder", data_dir=str(path))
    seen = []
    for split, rows in loaded.items():
        for row in rows:
            item = row["id"]
            seen.append(item)
            want = expected.get(item)
            if want is None:
                problems.append(f"{item}: not expected in the export")
                continue
            audio = row["audio"]
            expect(
                audio["sampling_rate"] == want["sampling_rate"],
                f"{item}: sampling rate {audio['sampling_rate']}, expected {want['sampling_rate']}",
            )
            expect(len(audio["array"]) > 0, f"{item}: no samples decoded")
            expect(row["text"] == want["text"], f"{item}: text {row['text']!r}, expected {want['text']!r}")
            expect(split == want["split"], f"{item}: split {split}, expected {want['split']}")
            file = pathlib.Path(path) / split / f"{item}.wav"
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            expect(digest == want["sha256"], f"{item}: sha256 {digest}, expected {want['sha256']}")
    expect(len(seen) == len(set(seen)), f"an item appears twice: {sorted(seen)}")
    expect(set(seen) == set(expected), f"ids {sorted(seen)} != expected {sorted(expected)}")
    return len(seen)


def check_webdataset(path, expected):
    import webdataset as wds

    shards = sorted(str(p) for p in pathlib.Path(path).glob("shard-*.tar"))
    expect(len(shards) > 0, f"no shards in {path}")
    seen = []
    for sample in wds.WebDataset(shards, shardshuffle=False):
        key = sample["__key__"]
        seen.append(key)
        row = json.loads(sample["json"])
        want = expected.get(key)
        if want is None:
            problems.append(f"{key}: not expected in the export")
            continue
        expect(row["id"] == key, f"{key}: its json names {row['id']}")
        expect(row["text"] == want["text"], f"{key}: text {row['text']!r}, expected {want['text']!r}")
        files = [k for k in sample if not k.startswith("__") and k != "json"]
        expect(len(files) == 1, f"{key}: files {files}")
        for k in files:
            digest = hashlib.sha256(sample[k]).hexdigest()
            expect(digest == want["sha256"], f"{key}.{k}: sha256 {digest}, expected {want['sha256']}")
    expect(len(seen) == len(set(seen)), f"an item appears twice: {sorted(seen)}")
    expect(set(seen) == set(expected), f"ids {sorted(seen)} != expected {sorted(expected)}")
    print(f"{len(shards)} shards")
    return len(seen)


def check_zip(path, expected):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
        expect(bad is None, f"entry {bad} fails its CRC")
        names = archive.namelist()
        expect(len(names) == len(set(names)), f"an entry appears twice: {names}")
        expect("README.md" in names, f"no dataset card in {names}")
        rows = [json.loads(line) for line in archive.read("manifest.jsonl").decode().splitlines() if line]
        check_rows(rows, expected, ["sha256", "text", "kind"])
        for row in rows:
            want = expected.get(row["id"])
            files = [n for n in names if n.startswith(f"files/{row['id']}.")]
            expect(len(files) == 1 and files[0] == row["file"], f"{row['id']}: files {files}, row says {row['file']}")
            if want and files:
                digest = hashlib.sha256(archive.read(files[0])).hexdigest()
                expect(digest == want["sha256"], f"{files[0]}: sha256 {digest}, expected {want['sha256']}")
    print(f"{len(names)} entries")
    return len(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", required=True, choices=["jsonl", "csv", "hf", "webdataset", "zip"])
    parser.add_argument("--path", required=True)
    parser.add_argument("--expect", required=True)
    args = parser.parse_args()
    expected = json.loads(pathlib.Path(args.expect).read_text())
    check = {
        "jsonl": check_jsonl,
        "csv": check_csv,
        "hf": check_hf,
        "webdataset": check_webdataset,
        "zip": check_zip,
    }[args.format]
    count = check(args.path, expected)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"{args.format}: {count} rows as expected")


if __name__ == "__main__":
    main()
