#!/usr/bin/env python3
"""Validates JSON payloads against JSON Schemas (draft 2020-12).

Reads one JSON object per line from stdin: {"schema": PATH, "topic": TOPIC,
"payload": TEXT}. Checks each schema itself, then each payload; prints every
failure with its topic and exits 1 if there was one.
"""
import json
import sys

from jsonschema import Draft202012Validator

validators = {}
failures = 0
checked = 0
for line in sys.stdin:
    if not line.strip():
        continue
    item = json.loads(line)
    path = item["schema"]
    if path not in validators:
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        validators[path] = Draft202012Validator(schema)
    try:
        payload = json.loads(item["payload"])
    except json.JSONDecodeError as e:
        print(f"{item['topic']}: not JSON: {e}")
        failures += 1
        continue
    for error in validators[path].iter_errors(payload):
        print(f"{item['topic']}: {error.json_path}: {error.message}")
        failures += 1
    checked += 1
print(f"{checked} payloads checked against {len(validators)} schemas, {failures} failures")
sys.exit(1 if failures or not checked else 0)
