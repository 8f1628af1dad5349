"""``croissant.json`` (MLCommons Croissant 1.1 JSON-LD) and the Hugging Face ``README.md`` card.

Every Parquet file is a ``cr:FileObject`` (sha256, contentSize, application/x-parquet); each
source kind is a ``cr:FileSet`` (a glob over its files) and a ``cr:RecordSet`` whose fields read
its columns, with the Croissant data type and, for driver values, the unit (schema.org
``unitText``). ``prov:wasDerivedFrom`` lists the sealed batch header CIDs the rows came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.dataset.parquet import FileWritten, slug
from gateway.dataset.rows import SourceSchema

__all__ = ["CONTEXT", "croissant", "dataset_card"]

CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "prov": "http://www.w3.org/ns/prov#",
}
PARQUET = "application/x-parquet"
_FIXED_TYPES = {
    "source": "sc:Text",
    "topic": "sc:Text",
    "received_at": "sc:DateTime",
    "wall_ns": "sc:Integer",
    "mono_ns": "sc:Integer",
    "boot_id": "sc:Text",
    "clock_synced": "sc:Boolean",
    "seq": "sc:Integer",
    "key": "sc:Text",
    "duplicate": "sc:Boolean",
    "payload": "sc:Text",
    "decoded": "sc:Text",
    "batch_seq": "sc:Integer",
    "batch_index": "sc:Integer",
    "batch_cid": "sc:Text",
}
_FIXED_TEXT = {
    "received_at": "receive time, UTC, microseconds (wall_ns has the nanoseconds)",
    "mono_ns": "monotonic clock at receipt; orders readings within one boot",
    "clock_synced": "whether the wall clock was NTP-synced at receipt",
    "seq": "the gateway's spool sequence number (unique, increasing)",
    "duplicate": "true for a redelivery that depin-gateway restore skips",
    "payload": "the bytes exactly as received",
    "decoded": "a serial driver's decoded values as JSON text",
    "batch_cid": "CID of the signed header of the sealed batch holding the reading",
}
_KIND_TYPES = {"bool": "sc:Boolean", "int64": "sc:Integer", "float64": "sc:Float"}


def _field(set_id: str, name: str, data_type: str, text: str | None, unit: str | None) -> Any:
    field: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"{set_id}/{name}",
        "name": name,
        "dataType": data_type,
        "source": {"fileSet": {"@id": f"files-{set_id}"}, "extract": {"column": name}},
    }
    if text:
        field["description"] = text
    if unit:
        field["unitText"] = unit
    return field


def _record_set(schema: SourceSchema) -> dict[str, Any]:
    set_id = slug(schema.source)
    fields = [_field(set_id, n, t, _FIXED_TEXT.get(n), None) for n, t in _FIXED_TYPES.items()]
    for column in schema.columns:
        text = f"{column.kind} from topics {', '.join(column.topics)}"
        fields.append(
            _field(set_id, column.name, _KIND_TYPES.get(column.kind, "sc:Text"), text, column.unit)
        )
    return {
        "@type": "cr:RecordSet",
        "@id": set_id,
        "name": set_id,
        "description": f"readings from {schema.source}",
        "field": fields,
    }


def croissant(
    meta: Mapping[str, str],
    schemas: Mapping[str, SourceSchema],
    files: Sequence[FileWritten],
    batch_cids: Sequence[str],
) -> dict[str, Any]:
    """The Croissant document; ``meta``: name, description, license, creator, date_published."""
    distribution: list[dict[str, Any]] = [
        {
            "@type": "cr:FileObject",
            "@id": f.path,
            "name": f.path,
            "contentUrl": f.path,
            "encodingFormat": PARQUET,
            "sha256": f.sha256,
            "contentSize": f"{f.size} B",
        }
        for f in files
    ]
    distribution += [
        {
            "@type": "cr:FileSet",
            "@id": f"files-{slug(s)}",
            "name": f"files-{slug(s)}",
            "encodingFormat": PARQUET,
            "includes": f"data/{slug(s)}/*/*.parquet",
        }
        for s in schemas
    ]
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": meta["name"],
        "description": meta["description"],
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "license": meta["license"],
        "creator": {"@type": "sc:Organization", "name": meta["creator"]},
        "datePublished": meta["date_published"],
        "citeAs": f"{meta['name']}, {meta['creator']}, {meta['date_published'][:10]}",
        "version": "1.0.0",
        "prov:wasDerivedFrom": [{"@id": f"ipfs://{cid}"} for cid in batch_cids],
        "distribution": distribution,
        "recordSet": [_record_set(schema) for schema in schemas.values()],
    }
    if meta.get("url"):
        document["url"] = meta["url"]  # where the buyer finds the dataset, when it has a home
    return document


def dataset_card(
    meta: Mapping[str, str], schemas: Mapping[str, SourceSchema], summary: Mapping[str, int]
) -> str:
    """A Hugging Face dataset card: YAML header (license, one config per source kind), text."""
    lines = ["---", f"license: {meta['license_id']}", "pretty_name: " + meta["name"], "configs:"]
    for source in schemas:
        lines += [
            f"- config_name: {slug(source)}",
            "  data_files:",
            "  - split: train",
            f"    path: data/{slug(source)}/*/*.parquet",
        ]
    lines += ["---", "", f"# {meta['name']}", "", meta["description"], ""]
    lines += [
        f"{summary['rows']} readings from {len(schemas)} source(s), "
        f"{summary['batches']} sealed batches, {summary['unsealed']} readings not yet sealed.",
        "",
        "## Columns",
        "",
    ]
    for schema in schemas.values():
        lines.append(f"### {schema.source}")
        lines.append("")
        for column in schema.columns:
            unit = f" [{column.unit}]" if column.unit else ""
            lines.append(f"- `{column.name}`: {column.kind}{unit}")
        lines.append("")
    lines += [
        "## Provenance",
        "",
        "`provenance.json` maps every file's sha256 to the signed, hash-chained batch headers in",
        "`headers.car`; check it with `depin-gateway dataset verify DIR --gateway-key KEY`.",
        "",
    ]
    return "\n".join(lines)
