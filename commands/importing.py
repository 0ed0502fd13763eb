"""The engine of `flowline import`: people and events from CSV or JSON Lines into a Flowline API,
in batches (POST /v1/profiles/batch, POST /v1/events), with a progress bar, a report, a file of
the rejected rows, and a checkpoint that lets an interrupted import resume without writing
anything twice.

A row is read, mapped (``--map column=attribute``), typed by the workspace's declared
attributes, and sent; a row that cannot be typed, or that the API rejects, goes to
FILE.rejected.csv with its row number, column and reason, and nothing of it is written. After
each batch the API acknowledged, FILE.checkpoint records the file's identity and the byte
offset after the batch: a second run of the same import resumes there. A batch sent again after
an interruption is harmless: profiles are merged (the same values: ``unchanged``), events are
stored once per id (rows without an id get one derived from the file and the row).

Over ~400 lines: reader, typing, batching, report and checkpoint are one pipeline that shares
its state (offsets, row numbers, the rejected file), kept together so the resume logic reads in
one place.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import httpx

Kind = Literal["profiles", "events"]
Format = Literal["csv", "jsonl"]
MAX_BATCH = 1000
# Standard attributes of a profile (the spec's): known without a declaration.
STANDARD_ATTRIBUTES = frozenset(
    {"email", "phone", "first_name", "last_name", "timezone", "locale", "country", "created_at"}
)
# Event fields; every other column of an events file is a property.
EVENT_FIELDS = ("id", "profile_id", "name", "timestamp")
SKIP = "-"  # --map column=- leaves a column out
# Bytes of the file's start hashed into its identity (with its size): enough to tell files apart,
# cheap for a file of gigabytes.
_HEAD_BYTES = 1 << 16
_RETRIES = 5


class ImportFailed(Exception):
    """The import cannot go on (the server unreachable, the key refused, a bad file); the message
    is one line for the person at the terminal."""


@dataclass
class ImportOptions:
    kind: Kind
    file: Path
    url: str
    key: str
    format: Format | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    id_column: str = "id"
    match: Literal["id", "email"] = "id"
    blank: Literal["ignore", "clear"] = "ignore"
    dry_run: bool = False
    triggers: bool = True
    batch_size: int = 500
    # Batches in flight at once: the next is read and sent while the server stores one.
    window: int = 2


@dataclass
class ImportReport:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    resumed_after_row: int | None = None
    seconds: float = 0.0
    rejected_file: Path | None = None
    dry_run: bool = False

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


@dataclass
class Row:
    number: int  # as a spreadsheet shows it (CSV: the header is row 1) / the line (JSON Lines)
    end: int  # byte offset just after the row
    cells: dict[str, Any]


@dataclass
class Rejection:
    row: int
    column: str
    reason: str
    cells: dict[str, Any]


def file_format(path: Path, given: Format | None) -> Format:
    if given is not None:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ImportFailed(f"{path}: cannot tell CSV from JSON Lines by its name; give --format csv|jsonl")


def identity(path: Path) -> dict[str, Any]:
    """What tells this file from another (or from itself edited): size and its start's hash."""
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(_HEAD_BYTES)).hexdigest()
    return {"size": path.stat().st_size, "head_sha256": head}


# ---------------------------------------------------------------- reading


def _lines(handle: BinaryIO, position: list[int]) -> Iterator[str]:
    """The file's lines, decoded; ``position[0]`` is the byte offset after the last line given."""
    for raw in handle:
        position[0] += len(raw)
        yield raw.decode("utf-8-sig" if position[0] == len(raw) else "utf-8")


def read_rows(path: Path, fmt: Format, start: int = 0, first_row: int | None = None) -> Iterator[Row]:
    """Every row from byte offset ``start`` (0, or an offset a checkpoint recorded); CSV cells are
    strings, JSON Lines values as written."""
    with path.open("rb") as handle:
        if fmt == "csv":
            header_line = handle.readline()
            header = next(csv.reader([header_line.decode("utf-8-sig")]), [])
            if not header:
                return
            position = [max(start, len(header_line))]
            handle.seek(position[0])
            number = first_row if first_row is not None else 1
            for record in csv.reader(_lines(handle, position)):
                number += 1
                if not record:
                    continue
                cells: dict[str, Any] = dict(zip(header, record, strict=False))
                if len(record) > len(header):
                    cells[""] = "more cells than columns"
                yield Row(number, position[0], cells)
            return
        handle.seek(start)
        line = first_row if first_row is not None else 0
        offset = start
        for raw in handle:
            offset += len(raw)
            line += 1
            text = raw.decode("utf-8-sig" if offset == len(raw) else "utf-8").strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                value = {"": f"not JSON: {error.msg} at column {error.colno}"}
            if not isinstance(value, dict):
                value = {"": "not a JSON object"}
            yield Row(line, offset, value)


# ---------------------------------------------------------------- typing


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def typed(kind: str | None, value: Any) -> Any:
    """A cell as its declared type (CSV cells arrive as text); raises ValueError with the reason.
    Blank cells stay "" (the blank policy decides); values already typed (JSON Lines) stay."""
    if not isinstance(value, str) or not value.strip() or kind in (None, "text"):
        return value
    text = value.strip()
    if kind == "number":
        try:
            number = float(text) if re.search(r"[.eE]", text) else int(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if (isinstance(number, float) and number != number) or number in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a number")
        return number
    if kind == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{value!r} is not true or false")
    if kind == "date":
        for parse in (date.fromisoformat, datetime.fromisoformat):
            try:
                parse(text)
                return text
            except ValueError:
                continue
        raise ValueError(f"{value!r} is not an ISO date or date-time")
    if kind == "list":
        if text.startswith("["):
            try:
                found = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"{value!r} is not a JSON list") from None
            if isinstance(found, list):
                return found
            raise ValueError(f"{value!r} is not a list")
        return [part.strip() for part in text.split(";") if part.strip()]
    return value


@dataclass
class Mapper:
    """Turns a row into an API entry: columns to attributes (or event fields and properties)."""

    options: ImportOptions
    declared: dict[str, str]
    file_id: str

    def target(self, column: str) -> str:
        return self.options.mapping.get(column, column)

    def column_of(self, target: str) -> str:
        """The column an attribute (or event field) came from, for reports."""
        for column, mapped in self.options.mapping.items():
            if mapped == target:
                return column
        return target

    def profile(self, row: Row) -> dict[str, Any] | Rejection:
        attributes: dict[str, Any] = {}
        profile_id: str | None = None
        for column, value in row.cells.items():
            if column == "":
                return Rejection(row.number, "", str(value), row.cells)
            target = self.target(column)
            if target == SKIP:
                continue
            # The id column, or a column mapped onto the id (--map user_id=id).
            if target == "id" or (column == self.options.id_column and column not in self.options.mapping):
                profile_id = None if value in (None, "") else str(value)
                continue
            if (
                target not in self.declared
                and target not in STANDARD_ATTRIBUTES
                and column not in self.options.mapping
            ):
                if value in (None, ""):
                    continue
                reason = f"unknown column: declare the attribute {target!r} or --map {column}=ATTRIBUTE"
                return Rejection(row.number, column, reason, row.cells)
            try:
                attributes[target] = typed(self.declared.get(target), value)
            except ValueError as error:
                return Rejection(
                    row.number, column, f"{error} ({target} is declared {self.declared[target]})", row.cells
                )
        if profile_id is None and self.options.match == "id":
            return Rejection(row.number, self.options.id_column, "no id (or give --match email)", row.cells)
        entry: dict[str, Any] = {"attributes": attributes}
        if profile_id is not None:
            entry["id"] = profile_id
        return entry

    def event(self, row: Row) -> dict[str, Any] | Rejection:
        event: dict[str, Any] = {"properties": {}}
        for column, value in row.cells.items():
            if column == "":
                return Rejection(row.number, "", str(value), row.cells)
            target = self.target(column)
            if target == SKIP:
                continue
            if target in EVENT_FIELDS:
                if value not in (None, ""):
                    event[target] = value
            elif target == "properties" and isinstance(value, dict):
                event["properties"].update(value)
            else:
                name = target.removeprefix("properties.")
                event["properties"][name] = value
        # An id from the file and the row: the same row sent twice is stored once.
        event.setdefault("id", f"import-{self.file_id}-{row.number}")
        return event


# ---------------------------------------------------------------- the rejected file and checkpoint


class RejectedFile:
    """FILE.rejected.csv: row, column, reason, then the row's cells (the file's own columns)."""

    def __init__(self, path: Path, keep_bytes: int | None) -> None:
        self.path = path
        self.count = 0
        self._handle: io.TextIOWrapper | None = None
        self._writer: Any = None
        self._columns: list[str] | None = None
        # Resuming: what the rejected file held at the checkpoint (rows of a batch rejected after
        # it are written again by the resumed run, so they are cut).
        if keep_bytes is not None and path.exists():
            with path.open("r+b") as handle:
                handle.truncate(keep_bytes)
        elif path.exists():
            path.unlink()

    def add(self, rejection: Rejection) -> None:
        if self._handle is None:
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._handle = self.path.open("a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle)
            self._columns = [c for c in rejection.cells if c != ""]
            if fresh:
                self._writer.writerow(["row", "column", "reason", *self._columns])
        assert self._columns is not None
        cells = [_cell(rejection.cells.get(c)) for c in self._columns]
        self._writer.writerow([rejection.row, rejection.column, rejection.reason, *cells])
        self.count += 1

    def size(self) -> int:
        if self._handle is not None:
            self._handle.flush()
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


# ---------------------------------------------------------------- the API


class Api:
    def __init__(self, options: ImportOptions) -> None:
        self.url = options.url.rstrip("/")
        self.client = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {options.key}"},
            timeout=httpx.Timeout(120.0, connect=10.0),
        )
        self.reached = False

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request, retried while the server is busy (503) or unreachable for a moment; the
        batches are idempotent, so a retry writes nothing twice."""
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        for attempt in range(_RETRIES):
            try:
                response = await self.client.request(method, path, content=content, headers=headers)
            except httpx.TransportError as error:
                # Never reached: say so at once; reached before: a restart, worth a few retries.
                if attempt == _RETRIES - 1 or not self.reached:
                    raise ImportFailed(f"cannot reach Flowline at {self.url}: {error}") from None
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            self.reached = True
            if response.status_code == 503 and attempt < _RETRIES - 1:
                await asyncio.sleep(float(response.headers.get("Retry-After", 0.5 * 2**attempt)))
                continue
            if response.status_code == 401:
                raise ImportFailed(f"{self.url} refused the API key (give --key or FLOWLINE_KEY)")
            if response.status_code in (200, 202, 422):
                return response.json()
            raise ImportFailed(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.client.aclose()


# ---------------------------------------------------------------- the pipeline

Progress = Callable[[int, int], None]  # (bytes done, rows done)


def _fault_column(path: str, mapper: Mapper, kind: Kind) -> str:
    """The column a fault's path points at: $.profiles[3].attributes.age -> the column of age."""
    found = re.match(
        r"\$\.(?:profiles|events)\[\d+\](?:\.attributes|\.properties)?(?:\.([A-Za-z_][\w]*)|\[\"(.+?)\"\])?",
        path,
    )
    name = (found.group(1) or found.group(2)) if found else None
    if name is None:
        return ""
    if kind == "profiles" and name == "id" and ".attributes" not in path:
        return mapper.options.id_column
    return mapper.column_of(name)


Outcome = tuple[str, list[dict[str, str]]]


async def _send(api: Api, options: ImportOptions, entries: list[dict[str, Any]]) -> list[Outcome]:
    """One batch; (outcome, faults) per entry, in order."""
    if not entries:
        return []
    if options.kind == "profiles":
        body = {
            "profiles": entries,
            "match": options.match,
            "blank": options.blank,
            "dry_run": options.dry_run,
            "triggers": options.triggers,
        }
        answer = await api.call("POST", "/v1/profiles/batch", body)
        if "results" not in answer:
            raise ImportFailed(f"the batch was refused: {answer.get('message')} {answer.get('faults', '')}")
        return [(r["outcome"], r.get("faults", [])) for r in answer["results"]]
    if options.dry_run:
        # Events have no dry run on the server: the rows were read and checked here.
        return [("created", []) for _ in entries]
    answer = await api.call("POST", "/v1/events", {"events": entries})
    if "rejected" not in answer:
        raise ImportFailed(f"the batch was refused: {answer.get('message')} {answer.get('faults', '')}")
    rejected = {r["index"]: r["faults"] for r in answer["rejected"]}
    # The same id again (a batch replayed after an interruption) is stored once: a duplicate.
    new = answer["accepted"]
    outcomes: list[Outcome] = []
    for index in range(len(entries)):
        if index in rejected:
            outcomes.append(("rejected", rejected[index]))
        elif new > 0:
            outcomes.append(("created", []))
            new -= 1
        else:
            outcomes.append(("unchanged", []))
    return outcomes


Item = tuple[Row, "dict[str, Any] | Rejection"]


async def run_import(options: ImportOptions, progress: Progress | None = None) -> ImportReport:
    """Import ``options.file`` (see the module's docstring); returns the report."""
    if not 1 <= options.batch_size <= MAX_BATCH:
        raise ImportFailed(f"--batch-size must be between 1 and {MAX_BATCH}")
    path = options.file
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    fmt = file_format(path, options.format)
    checkpoint_path = path.with_name(path.name + ".checkpoint")
    rejected_path = path.with_name(path.name + ".rejected.csv")
    me = identity(path) | {"kind": options.kind, "format": fmt}
    report = ImportReport(rejected_file=rejected_path, dry_run=options.dry_run)
    start, first_row, keep = 0, None, None
    if checkpoint_path.exists() and not options.dry_run:
        saved = json.loads(checkpoint_path.read_text())
        # Another file (or this one changed) under the same name starts again from its first row.
        if saved.get("identity") == me:
            start, first_row, keep = saved["offset"], saved["row"], saved["rejected_bytes"]
            for name in ("read", "created", "updated", "unchanged", "rejected"):
                setattr(report, name, saved["report"][name])
            report.resumed_after_row = first_row
    api = Api(options)
    began = time.monotonic()
    rejected = RejectedFile(rejected_path, keep)
    in_flight: deque[tuple[asyncio.Task[list[Outcome]], list[Item], int]] = deque()
    try:
        declared: dict[str, str] = {}
        if options.kind == "profiles":
            answer = await api.call("GET", "/v1/attributes")
            declared = {a["name"]: a["type"] for a in answer["attributes"]}
        mapper = Mapper(options, declared, me["head_sha256"][:16])
        convert = mapper.profile if options.kind == "profiles" else mapper.event

        async def settle() -> None:
            """Wait for the oldest batch; record its outcomes, then the checkpoint after it."""
            task, items, end = in_flight.popleft()
            outcomes = iter(await task)
            for row, entry in items:
                if isinstance(entry, Rejection):
                    rejected.add(entry)
                    report.rejected += 1
                    continue
                outcome, faults = next(outcomes)
                if outcome == "rejected":
                    column, reason = _reason(faults, mapper, options.kind)
                    rejected.add(Rejection(row.number, column, reason, row.cells))
                    report.rejected += 1
                else:
                    setattr(report, outcome, getattr(report, outcome) + 1)
            report.read += len(items)
            if not options.dry_run and items:
                checkpoint = {
                    "identity": me,
                    "offset": end,
                    "row": items[-1][0].number,
                    "rejected_bytes": rejected.size(),
                    "report": asdict(report) | {"rejected_file": str(rejected_path)},
                }
                _write_atomically(checkpoint_path, checkpoint)
            if progress is not None:
                progress(end, report.read)

        async def send(items: list[Item], end: int) -> None:
            entries = [e for _, e in items if not isinstance(e, Rejection)]
            task = asyncio.create_task(_send(api, options, entries))
            in_flight.append((task, items, end))
            while len(in_flight) >= options.window:
                await settle()

        items: list[Item] = []
        end = start
        for row in read_rows(path, fmt, start, first_row):
            items.append((row, convert(row)))
            end = row.end
            if len(items) >= options.batch_size:
                await send(items, end)
                items = []
        if items:
            await send(items, end)
        while in_flight:
            await settle()
    finally:
        for task, _, _ in in_flight:
            task.cancel()
        rejected.close()
        await api.close()
    report.seconds = time.monotonic() - began
    checkpoint_path.unlink(missing_ok=True)  # done: a run again starts from the first row
    if report.rejected == 0:
        rejected_path.unlink(missing_ok=True)
    return report


def _reason(faults: list[dict[str, str]], mapper: Mapper, kind: Kind) -> tuple[str, str]:
    """(column, reason) of a row the API rejected: the first fault's column, every fault's message."""
    if not faults:
        return "", "rejected"
    return _fault_column(faults[0]["path"], mapper, kind), "; ".join(f["message"] for f in faults)
