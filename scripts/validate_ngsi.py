"""Checks NGSI-LD entities (normalized form, one JSON object per line on
stdin) against the FIWARE Smart Data Models attribute database that PyPI's
pysmartdatamodels ships (fetched and verified by scripts/fetch.py).

pysmartdatamodels' own validate_payload fetches the model's schema.json from
GitHub at run time; the wheel carries the attribute database instead (every
attribute of every model with its JSON type, NGSI type, format and enum).
This checks each entity against that offline: the entity type, every
attribute known to the model, its NGSI type (Property, Relationship,
GeoProperty), its JSON type, date-time formats and enums.

Usage: python3 validate_ngsi.py DATABASE.json.gz MODEL < entities.jsonl
Prints each problem; exits 1 if there is one, 0 when every entity conforms.
"""

import datetime
import gzip
import json
import sys

JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
ENTITY_KEYS = {"id", "type", "@context"}


def attributes(database: str, model: str) -> dict:
    """The model's top-level attributes by name (the first definition wins:
    nested sub-properties such as those of `address` come after)."""
    found = {}
    for entry in json.load(gzip.open(database)):
        if entry.get("dataModel") == model and entry.get("property") not in found:
            found[entry["property"]] = entry
    return found


def is_date_time(text: str) -> bool:
    try:
        datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def problems(entity: dict, model: str, known: dict) -> list:
    out = []
    if entity.get("type") != model:
        out.append(f"type is {entity.get('type')!r}, not {model!r}")
    if not str(entity.get("id", "")).startswith(f"urn:ngsi-ld:{model}:"):
        out.append(f"id {entity.get('id')!r} is not urn:ngsi-ld:{model}:...")
    context = entity.get("@context")
    if not isinstance(context, (list, str)):
        out.append("@context is missing")
    # An inline context must name each term by the IRI the database gives.
    for inline in (c for c in (context if isinstance(context, list) else []) if isinstance(c, dict)):
        for term, iri in inline.items():
            if term == model:
                expected = f"https://smartdatamodels.org/{known[next(iter(known))]['repoName']}/{model}"
            elif term in known:
                expected = known[term].get("context")
            else:
                out.append(f"@context: {term} is not an attribute of {model}")
                continue
            if iri != expected:
                out.append(f"@context: {term} is {iri!r}, the database says {expected!r}")
    for name in entity:
        if name not in ENTITY_KEYS and not any(name in c for c in (context or []) if isinstance(c, dict)):
            if isinstance(context, list) and not any(isinstance(c, str) for c in context):
                out.append(f"{name}: not defined by the inline @context")
    for name, attribute in entity.items():
        if name in ENTITY_KEYS:
            continue
        definition = known.get(name)
        if definition is None:
            out.append(f"{name}: not an attribute of {model}")
            continue
        ngsi = definition.get("typeNGSI") or "Property"
        if not isinstance(attribute, dict) or attribute.get("type") != ngsi:
            out.append(f"{name}: must be an NGSI-LD {ngsi}")
            continue
        value = attribute.get("object" if ngsi == "Relationship" else "value")
        if isinstance(value, dict) and value.get("@type") == "DateTime":
            value = value.get("@value")
            if not (isinstance(value, str) and is_date_time(value)):
                out.append(f"{name}: {value!r} is not an ISO 8601 date-time")
                continue
        expected = definition.get("type")
        check = JSON_TYPES.get(expected)
        if check and not check(value):
            out.append(f"{name}: {value!r} is not a JSON {expected}")
        if definition.get("format") == "date-time" and not (isinstance(value, str) and is_date_time(value)):
            out.append(f"{name}: {value!r} is not a date-time")
        if definition.get("enum") and value not in definition["enum"]:
            out.append(f"{name}: {value!r} is not one of {definition['enum']}")
        if name.startswith("peopleCount") and check and check(value) and value < 0:
            out.append(f"{name}: a count cannot be negative")
    return out


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    database, model = sys.argv[1], sys.argv[2]
    known = attributes(database, model)
    if not known:
        sys.exit(f"error: no data model {model} in {database}")
    failed = 0
    checked = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        checked += 1
        for problem in problems(json.loads(line), model, known):
            print(f"entity {checked}: {problem}")
            failed += 1
    print(f"{checked} {model} entities checked against {len(known)} attributes: {failed} problem(s)")
    sys.exit(1 if failed or not checked else 0)


if __name__ == "__main__":
    main()
