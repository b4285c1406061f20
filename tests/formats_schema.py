"""Validators for td-graph's ECS and OCSF documents, built only from the vendored schemas.

Nothing here reads td-graph's own mapping tables: a field name, a type, an enum value or a
required attribute is checked against ``tests/data/ecs`` (Elastic's ``ecs_flat.yml`` subset) and
``tests/data/ocsf`` (OCSF's class, object, profile and dictionary files), so a mapping mistake
fails here instead of being confirmed by the table that made it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data"
ECS_DIR, OCSF_DIR = DATA / "ecs", DATA / "ocsf"

# ECS documents may carry one custom namespace (ECS: "custom fields" go under a name of your own).
ECS_CUSTOM = "td_graph"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


# --------------------------------------------------------------------------------------- ECS
@lru_cache(maxsize=None)
def ecs_fields() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((ECS_DIR / "ecs_flat_subset.yml").read_text(encoding="utf-8"))


def ecs_version() -> str:
    return dict(line.split(": ", 1) for line in (ECS_DIR / "SOURCE").read_text().splitlines())["version"]


def _ecs_value_error(field: str, kind: str, value: Any) -> str | None:
    if value is None:
        return f"{field}: null (write nothing instead)"
    if kind in ("keyword", "constant_keyword", "wildcard", "match_only_text", "text"):
        return None if isinstance(value, str) else f"{field}: {kind} needs a string, got {value!r}"
    if kind == "date":
        ok = (isinstance(value, str) and _ISO_DATE.match(value)) or (isinstance(value, int) and not isinstance(value, bool))
        return None if ok else f"{field}: date needs ISO 8601 or epoch millis, got {value!r}"
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
            return None
        except (ValueError, TypeError):
            return f"{field}: ip needs an IPv4/IPv6 address, got {value!r}"
    if kind in ("long", "integer", "short", "byte"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{field}: {kind} needs an integer, got {value!r}"
    if kind in ("float", "double", "scaled_float", "half_float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"{field}: {kind} needs a number, got {value!r}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{field}: boolean needs true/false, got {value!r}"
    if kind == "geo_point":
        ok = isinstance(value, dict) and set(value) == {"lat", "lon"} and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values())
        return None if ok else f"{field}: geo_point needs {{lat, lon}}, got {value!r}"
    return f"{field}: ECS type {kind} not checked by this validator"


def ecs_errors(doc: dict[str, Any]) -> list[str]:
    """Every problem of ``doc`` as an ECS document (an empty list: valid)."""
    fields = ecs_fields()
    errors: list[str] = []
    leaves: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if prefix == ECS_CUSTOM or prefix.startswith(ECS_CUSTOM + "."):
            return
        spec = fields.get(prefix)
        if spec is not None and spec["type"] not in ("object", "nested", "flattened"):
            leaves[prefix] = value
            return
        if spec is not None:  # a free-form ECS object (labels, ...)
            if not isinstance(value, dict):
                errors.append(f"{prefix}: ECS object field needs an object, got {value!r}")
            return
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else key, sub)
            return
        errors.append(f"{prefix}: not an ECS field (of the vendored field sets)")

    walk("", doc)
    for name, value in leaves.items():
        spec = fields[name]
        is_array = "array" in (spec.get("normalize") or [])
        if is_array and not isinstance(value, list):
            errors.append(f"{name}: ECS normalizes it to an array, got {value!r}")
            continue
        if not is_array and isinstance(value, list):
            errors.append(f"{name}: ECS defines a single value, got a list")
            continue
        values = value if isinstance(value, list) else [value]
        if is_array and not values:
            errors.append(f"{name}: empty array (write nothing instead)")
        for v in values:
            problem = _ecs_value_error(name, spec["type"], v)
            if problem:
                errors.append(problem)
            allowed = spec.get("allowed_values")
            if allowed and v not in {a["name"] for a in allowed}:
                errors.append(f"{name}: {v!r} is not an allowed value ({sorted(a['name'] for a in allowed)})")
    for name, spec in fields.items():
        if spec.get("required") and name not in leaves:
            errors.append(f"{name}: required by ECS, missing")
    if "ecs.version" not in leaves:
        errors.append("ecs.version: missing")
    categories, types = leaves.get("event.category") or [], leaves.get("event.type") or []
    if categories and types and isinstance(categories, list) and isinstance(types, list):
        expected = {a["name"]: set(a.get("expected_event_types") or []) for a in fields["event.category"]["allowed_values"]}
        for t in types:
            if not any(t in expected.get(c, set()) for c in categories):
                errors.append(f"event.type: {t!r} is expected by none of event.category {categories}")
    return errors


# -------------------------------------------------------------------------------------- OCSF
def _load(rel: str) -> dict[str, Any]:
    return json.loads((OCSF_DIR / rel).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def ocsf_dictionary() -> dict[str, Any]:
    return _load("dictionary.json")


def ocsf_version() -> str:
    return _load("version.json")["version"]


def _merge_attrs(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) for k, v in base.items()}
    for name, attr in extra.items():
        out[name] = {**out.get(name, {}), **attr}
        if "enum" in attr and "enum" in base.get(name, {}):
            out[name]["enum"] = {**base[name]["enum"], **attr["enum"]}
    return out


def _own_attributes(doc: dict[str, Any]) -> dict[str, Any]:
    """A file's attributes with its ``$include``d profiles first (tagged with the profile)."""
    attrs: dict[str, Any] = {}
    for inc in doc.get("attributes", {}).get("$include", []):
        profile = _load(inc)
        tagged = {k: {**v, "profile": v.get("profile", profile["name"])} for k, v in profile["attributes"].items()
                  if k != "$include"}
        attrs = _merge_attrs(attrs, tagged)
    own = {k: v for k, v in doc.get("attributes", {}).items() if k != "$include"}
    return _merge_attrs(attrs, own)


@lru_cache(maxsize=None)
def _event_files() -> dict[str, str]:
    return {_load(str(p.relative_to(OCSF_DIR)))["name"]: str(p.relative_to(OCSF_DIR))
            for p in (OCSF_DIR / "events").rglob("*.json")}


@lru_cache(maxsize=None)
def ocsf_class(name: str) -> dict[str, Any]:
    """A class resolved through ``extends`` (attributes, enums, constraints, category, uid)."""
    doc = _load(_event_files()[name])
    parent = ocsf_class(doc["extends"]) if doc.get("extends") else {"attributes": {}, "constraints": {}}
    out = {
        "name": name,
        "attributes": _merge_attrs(parent["attributes"], _own_attributes(doc)),
        "constraints": {**parent["constraints"], **doc.get("constraints", {})},
        "category": doc.get("category", parent.get("category")),
        "caption": doc.get("caption"),
        "uid": doc.get("uid", 0),
    }
    categories = _load("categories.json")["attributes"]
    cat = categories.get(out["category"])
    out["category_uid"] = cat["uid"] if cat else 0
    out["class_uid"] = out["category_uid"] * 1000 + out["uid"] if cat else 0
    return out


@lru_cache(maxsize=None)
def ocsf_classes_by_uid() -> dict[int, dict[str, Any]]:
    return {c["class_uid"]: c for c in (ocsf_class(n) for n in _event_files()) if c["class_uid"] or c["name"] == "base_event"}


@lru_cache(maxsize=None)
def ocsf_object(name: str) -> dict[str, Any] | None:
    path = OCSF_DIR / "objects" / f"{name}.json"
    if not path.exists():
        return None
    doc = _load(f"objects/{name}.json")
    parent = ocsf_object(doc["extends"]) if doc.get("extends") else {"attributes": {}, "constraints": {}}
    return {
        "name": name,
        "attributes": _merge_attrs(parent["attributes"], _own_attributes(doc)),
        "constraints": {**parent["constraints"], **doc.get("constraints", {})},
    }


_SCALARS = {
    "string_t": lambda v: isinstance(v, str),
    "integer_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float_t": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean_t": lambda v: isinstance(v, bool),
    "json_t": lambda v: True,
}


def _scalar_error(path: str, type_name: str, value: Any) -> str | None:
    types = ocsf_dictionary()["types"]["attributes"]
    spec = types.get(type_name)
    if spec is None:
        return f"{path}: unknown OCSF type {type_name}"
    base = spec.get("type", type_name)
    if not _SCALARS[base](value):
        return f"{path}: {type_name} ({base}) does not take {value!r}"
    if type_name == "ip_t":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"{path}: ip_t does not take {value!r}"
    elif spec.get("regex") and not re.search(spec["regex"], value):
        return f"{path}: {type_name} does not match its pattern: {value!r}"
    if spec.get("range") and not spec["range"][0] <= value <= spec["range"][1]:
        return f"{path}: {value!r} outside {spec['range']}"
    return None


def _check_attributes(path: str, value: dict[str, Any], attrs: dict[str, Any], constraints: dict[str, Any],
                      profiles: set[str], errors: list[str]) -> None:
    dictionary = ocsf_dictionary()["attributes"]
    for name, attr in attrs.items():
        active = attr.get("profile") is None or attr["profile"] in profiles
        if attr.get("requirement") == "required" and active and name not in value:
            errors.append(f"{path}{name}: required, missing")
    for rule, names in constraints.items():
        present = [n for n in names if n in value]
        if rule == "at_least_one" and not present:
            errors.append(f"{path}: constraint at_least_one of {names} not met")
        if rule == "just_one" and len(present) != 1:
            errors.append(f"{path}: constraint just_one of {names} not met ({present})")
    for name, item in value.items():
        attr = attrs.get(name)
        if attr is None:
            errors.append(f"{path}{name}: not an attribute here (OCSF puts source fields under unmapped)")
            continue
        if attr.get("profile") is not None and attr["profile"] not in profiles:
            errors.append(f"{path}{name}: belongs to profile {attr['profile']!r}, not in metadata.profiles")
        entry = {**dictionary.get(name, {}), **{k: v for k, v in attr.items() if k in ("type", "is_array", "enum")}}
        if "enum" in attr and "enum" in dictionary.get(name, {}):
            entry["enum"] = {**dictionary[name]["enum"], **attr["enum"]}
        if "type" not in entry:
            errors.append(f"{path}{name}: not in the dictionary")
            continue
        _check_value(f"{path}{name}", entry, item, profiles, errors)
        sibling = entry.get("sibling")
        if sibling and sibling in value and "enum" in entry and isinstance(item, int) and item != 99:
            caption = entry["enum"].get(str(item), {}).get("caption")
            if caption is not None and value[sibling] != caption:
                errors.append(f"{path}{sibling}: {value[sibling]!r} is not the caption of {name}={item} ({caption!r})")


def _check_value(path: str, entry: dict[str, Any], value: Any, profiles: set[str], errors: list[str]) -> None:
    if value is None:
        errors.append(f"{path}: null (write nothing instead)")
        return
    if entry.get("is_array"):
        if not isinstance(value, list):
            errors.append(f"{path}: an array in OCSF, got {value!r}")
            return
        for i, v in enumerate(value):
            _check_value(f"{path}[{i}]", {**entry, "is_array": False}, v, profiles, errors)
        return
    if isinstance(value, list):
        errors.append(f"{path}: a single value in OCSF, got a list")
        return
    type_name = entry["type"]
    if type_name == "object":  # free-form (unmapped)
        if not isinstance(value, dict):
            errors.append(f"{path}: object needs an object, got {value!r}")
        return
    if type_name.endswith("_t"):
        problem = _scalar_error(path, type_name, value)
        if problem:
            errors.append(problem)
        elif "enum" in entry and str(value) not in entry["enum"]:
            errors.append(f"{path}: {value!r} is not one of its enum ids {sorted(entry['enum'], key=int)}")
        return
    obj = ocsf_object(type_name)
    if obj is None:
        errors.append(f"{path}: object {type_name!r} is not vendored (tests/data/ocsf/vendor.py OBJECTS)")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: {type_name} needs an object, got {value!r}")
        return
    _check_attributes(f"{path}.", value, obj["attributes"], obj["constraints"], profiles, errors)


def ocsf_errors(event: dict[str, Any]) -> list[str]:
    """Every problem of ``event`` as an OCSF event of the vendored schema (empty: valid)."""
    cls = ocsf_classes_by_uid().get(event.get("class_uid"))  # type: ignore[arg-type]
    if cls is None:
        return [f"class_uid: {event.get('class_uid')!r} is not a vendored class"]
    errors: list[str] = []
    profiles = set((event.get("metadata") or {}).get("profiles") or [])
    if event.get("category_uid") != cls["category_uid"]:
        errors.append(f"category_uid: {event.get('category_uid')!r}, class {cls['name']} is in {cls['category_uid']}")
    activity = event.get("activity_id")
    if isinstance(activity, int) and event.get("type_uid") != cls["class_uid"] * 100 + activity:
        errors.append(f"type_uid: {event.get('type_uid')!r} is not class_uid * 100 + activity_id")
    version = (event.get("metadata") or {}).get("version")
    if version != ocsf_version():
        errors.append(f"metadata.version: {version!r}, the vendored schema is {ocsf_version()}")
    # class_uid, category_uid and type_uid enumerate every class: the schema server generates
    # them, so they are checked here against the class itself rather than as enums.
    classification = {k: event[k] for k in ("class_uid", "category_uid", "type_uid") if k in event}
    rest = {k: v for k, v in event.items() if k not in classification}
    attrs = {k: v for k, v in cls["attributes"].items() if k not in classification}
    categories = _load("categories.json")["attributes"]
    captions = {"class_name": cls["caption"],
                "category_name": categories[cls["category"]]["caption"] if cls["category"] in categories else "Uncategorized"}
    activities = {**ocsf_dictionary()["attributes"]["activity_id"].get("enum", {}),
                  **cls["attributes"]["activity_id"].get("enum", {})}
    if isinstance(activity, int) and str(activity) in activities:
        captions["type_name"] = f"{cls['caption']}: {activities[str(activity)]['caption']}"
    for key, want in captions.items():
        if key in event and event[key] != want:
            errors.append(f"{key}: {event[key]!r}, the schema's caption is {want!r}")
    for key in classification:
        if not isinstance(event[key], int) or isinstance(event[key], bool):
            errors.append(f"{key}: needs an integer, got {event[key]!r}")
    _check_attributes("", rest, attrs, cls["constraints"], profiles, errors)
    for key in ("class_uid", "category_uid", "type_uid"):
        if key not in event:
            errors.append(f"{key}: required, missing")
    return errors
