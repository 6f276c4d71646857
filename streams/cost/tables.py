"""The live cost agent's tenant state in its Faust table, the growing parts in keys of their own.

The ids of the dedupe window and the runs of the last ``run_idle_days`` grow with a tenant's
traffic. Kept inside the tenant's JSON state, every event re-parsed and rewrote all of them
and Faust wrote the whole value to the changelog. Here they live in keys of their own in the
same table (``cost-state``), so an event reads and writes a bounded state and a few small
keys. Per tenant ``u`` (JSON strings; ``u``, ids and run ids escaped as in
``spend.record_id``, so ``|`` only ever separates):

- ``u``: the state, ``spend.TenantLedger`` JSON with empty ``"seen"`` and ``"runs"`` and a
  ``"tables"`` field: the commit count ``tx``, the next id and run-log numbers, the live id
  days ``{day: [first, last]}``, expired id days still to collect, and the run-log hours.
- ``NUL u|s|<event id>`` -> the id's number; ``NUL u|i|<n>`` -> ``[event id, arrival day]``.
- ``NUL u|r|<run id>`` -> ``{"at": tx, "cur": run, "prev": run}`` (spend, recent ids,
  fired marks and the run's log number); ``NUL u|j|<n>`` -> ``[run id, arrival hour]``;
  ``NUL u|h|<hour>`` -> ``[first, last]`` run-log numbers of that hour.

A user id is any 1 to 256 characters, so no key format is free of user ids by construction;
a leading NUL keeps clear of all real ones, and a user id that does start with NUL has its
state under ``NUL u`` (escaped, without ``|``), so even those never collide.

Why one table, and the state written last. Faust sends every write of an event to the
changelog partition of that event, through one producer that keeps order per partition, so
after a crash the changelog holds a *prefix* of the writes. Each event writes its id, log
and run keys first and the state last: a stored state implies every key it counts on is
stored too (across two tables, i.e. two changelog topics, a crash could keep the state
without the ids, and the replayed event would count twice). Keys written by an event whose
state write was lost are ignored: an id counts only if its number is below the state's next
number and its log entry names it in a live day; a run record written by a later commit
than the state's ``tx`` is read as its ``prev`` version. Deletions only remove what the
stored state no longer refers to, or what the same event, replayed, deletes again.

Expiry matches ``TenantLedger._prune``: an expired day's ids stop counting at once (its
range leaves the state) and are deleted a few per event (``COLLECT_STEP``); idle runs are
found through the hourly run log at the hourly prune. Writes happen only in ``commit``, in
the agent, for the event being processed (never from a timer).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from streams.cost.seen import MemoryRuns, MemorySeenIds, RunSpend
from streams.cost.spend import STATE_VERSION, TABLE_FIELD, TenantLedger, _id_part

NS = "\x00"  # first character of every key that is not a tenant's state
COLLECT_STEP = 16  # numbers of expired id days examined per commit


class _Gone:
    """A key this event deletes."""


GONE = _Gone()


def state_key(user_id: str) -> str:
    """The table key of a tenant's state: its user id (escaped if it starts with NUL)."""
    return NS + _id_part(user_id) if user_id.startswith(NS) else user_id


def tenant_of(key: str, value: Any) -> str | None:
    """The user id whose state a table entry holds; None for its ids, runs and logs."""
    if not isinstance(value, Mapping) or value.get("v") != STATE_VERSION:
        return None
    user = value.get("user", key)
    return user if isinstance(user, str) else key


def _is_older_state(value: Any) -> bool:
    return isinstance(value, Mapping) and "v" in value and TABLE_FIELD not in value


class TenantTables:
    """One tenant in the cost table for one event: ``open``, ``ledger.apply``, ``commit``.

    Reads see this event's own writes, which wait in memory until ``commit``."""

    def __init__(self, table: MutableMapping[str, Any], user_id: str, doc: Mapping[str, Any] | None) -> None:
        self.table = table
        self.user_id = user_id
        self.key = state_key(user_id)
        self._prefix = f"{NS}{_id_part(user_id)}|"
        self._pending: dict[str, Any] = {}
        meta: Mapping[str, Any] = (doc or {}).get(TABLE_FIELD) or {}
        self.tx = int(meta.get("tx", 0))  # commits so far; run records written later are not stored yet
        self.ids_next = int(meta.get("ids", 0))
        self.days: dict[str, list[int]] = {str(d): [int(r[0]), int(r[1])] for d, r in meta.get("days", {}).items()}
        self.gc: list[tuple[str, int, int]] = [(str(d), int(a), int(b)) for d, a, b in meta.get("gc", [])]
        self._collectable = len(self.gc)  # only days expired by a stored state are collected
        self.rlog_next = int(meta.get("rlog", 0))
        hours = meta.get("hours")
        self.hours: list[int] | None = [int(hours[0]), int(hours[1])] if hours else None
        self._drop_after: str | None = None  # an older state's key, deleted after the state write
        self.ledger = TenantLedger.from_json(doc, seen=TableSeenIds(self), runs=TableRuns(self))

    @classmethod
    def open(cls, table: MutableMapping[str, Any], user_id: str) -> TenantTables:
        """The tenant's state. One stored by an earlier version (ids and runs inside) is first
        moved into keys and stored again, so its dedupe memory is never lost."""
        key = state_key(user_id)
        doc = table.get(key)
        older_key = None
        if key != user_id and _is_older_state(table.get(user_id)):
            older_key = user_id  # an earlier version kept this tenant under its raw user id
            if doc is None:
                doc = table.get(user_id)
        if doc is not None and TABLE_FIELD not in doc:
            moving = cls(table, user_id, None)
            moving.migrate(TenantLedger.from_json(doc))
            moving._drop_after = older_key
            moving.commit()
            return cls(table, user_id, table.get(key))
        tenant = cls(table, user_id, doc)
        tenant._drop_after = older_key  # left over if a crash came between the two writes
        return tenant

    def migrate(self, older: TenantLedger) -> None:
        """Take over ``older``'s totals and move its in-memory ids and runs into keys."""
        seen, runs = self.ledger.seen, self.ledger.runs
        assert isinstance(older.seen, MemorySeenIds) and isinstance(older.runs, MemoryRuns)
        for day, ids in older.seen.items():
            for event_id in ids:
                seen.add(event_id, day)
        for run_id, run in older.runs.items():
            runs.put(run_id, run)
        older.seen, older.runs = seen, runs
        self.ledger = older

    def commit(self) -> None:
        """Write this event's keys, then the state (see the module docstring for why last)."""
        self._collect()
        doc = self.ledger.to_json()
        doc[TABLE_FIELD] = {
            "tx": self.tx + 1,
            "ids": self.ids_next,
            "days": {d: list(r) for d, r in self.days.items()},
            "gc": [list(g) for g in self.gc],
            "rlog": self.rlog_next,
            "hours": self.hours,
        }
        if self.key != self.user_id:
            doc["user"] = self.user_id
        for key, value in self._pending.items():
            if value is GONE:
                if key in self.table:
                    del self.table[key]
            else:
                self.table[key] = value
        self.table[self.key] = doc
        if self._drop_after is not None and self._drop_after in self.table:
            del self.table[self._drop_after]
        self._pending = {}

    # -- keys, read through this event's writes ------------------------------------------
    def side_key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}|{name}"

    def get(self, key: str) -> Any:
        if key in self._pending:
            value = self._pending[key]
            return None if value is GONE else value
        return self.table.get(key)

    def set(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def delete(self, key: str) -> None:
        self._pending[key] = GONE

    # -- ids -------------------------------------------------------------------------------
    def _collect(self) -> None:
        """Delete the keys of up to ``COLLECT_STEP`` numbers of days expired by the stored state."""
        budget = COLLECT_STEP
        while budget > 0 and self._collectable > 0:
            day, first, last = self.gc[0]
            while budget > 0 and first <= last:
                log_key = self.side_key("i", str(first))
                entry = self.get(log_key)
                # A day's range can hold numbers of other days (arrivals out of order): skip them.
                if isinstance(entry, list) and len(entry) == 2 and entry[1] == day:
                    seen_key = self.side_key("s", _id_part(str(entry[0])))
                    if self.get(seen_key) == first:  # not the id's later number, if it came back
                        self.delete(seen_key)
                    self.delete(log_key)
                first += 1
                budget -= 1
            if first > last:
                self.gc.pop(0)
                self._collectable -= 1
            else:
                self.gc[0] = (day, first, last)

    # -- runs ------------------------------------------------------------------------------
    def stored_run(self, run_id: str) -> Mapping[str, Any] | None:
        """The run as of the stored state (a record from a lost commit reads as its ``prev``)."""
        record = self.table.get(self.side_key("r", _id_part(run_id)))
        if not isinstance(record, Mapping):
            return None
        version = record["cur"] if int(record["at"]) <= self.tx else record["prev"]
        return version if isinstance(version, Mapping) else None

    def current_run(self, run_id: str) -> Mapping[str, Any] | None:
        key = self.side_key("r", _id_part(run_id))
        if key in self._pending:
            record = self._pending[key]
            return None if record is GONE else record["cur"]
        return self.stored_run(run_id)

    def write_run(self, run_id: str, version: Mapping[str, Any] | None) -> None:
        """The run's new version (None: forgotten); the stored one stays readable as ``prev``."""
        record = {"at": self.tx + 1, "cur": version, "prev": self.stored_run(run_id)}
        self.set(self.side_key("r", _id_part(run_id)), record)

    def log_run(self, run_id: str, hour: int) -> int:
        seq = self.rlog_next
        self.rlog_next += 1
        self.set(self.side_key("j", str(seq)), [run_id, hour])
        hour_key = self.side_key("h", str(hour))
        bucket = self.get(hour_key)
        self.set(hour_key, [int(bucket[0]), seq] if isinstance(bucket, list) else [seq, seq])
        self.hours = [hour, hour] if self.hours is None else [min(self.hours[0], hour), max(self.hours[1], hour)]
        return seq

    def expire_runs(self, idle_through: int) -> None:
        """Forget the runs last seen at ``idle_through`` or before: each is found through the log
        entry of its latest arrival hour. Entries and hours nobody refers to any more go too."""
        if self.hours is None:
            return
        first, last = self.hours
        through = idle_through // 3600
        low: int | None = None  # the first hour that keeps entries
        for hour in range(first, min(last, through) + 1):
            hour_key = self.side_key("h", str(hour))
            bucket = self.get(hour_key)
            if not isinstance(bucket, list):
                continue
            span = range(int(bucket[0]), int(bucket[1]) + 1)
            kept = [seq for seq in span if self._expire_entry(seq, hour, idle_through)]
            if not kept:
                self.delete(hour_key)
                continue
            low = hour if low is None else low
            if kept[0] != int(bucket[0]):
                self.set(hour_key, [kept[0], int(bucket[1])])
        if low is not None:
            self.hours = [low, last]
        elif through >= last:
            self.hours = None
        else:
            self.hours = [max(first, through + 1), last]

    def _expire_entry(self, seq: int, hour: int, idle_through: int) -> bool:
        """Whether run-log entry ``seq`` of ``hour`` is still needed."""
        log_key = self.side_key("j", str(seq))
        entry = self.get(log_key)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1] == hour):
            return False  # gone, or another hour's (arrivals out of order)
        run_id = str(entry[0])
        current, stored = self.current_run(run_id), self.stored_run(run_id)
        if current is not None and current["log"] == seq:
            if int(current["last"]) <= idle_through:
                self.write_run(run_id, None)  # the entry goes at a later prune, once this is stored
            return True
        if stored is not None and stored["log"] == seq:
            return True
        self.delete(log_key)  # the run moved on to a later entry, or is gone
        run_key = self.side_key("r", _id_part(run_id))
        if current is None and stored is None and run_key not in self._pending and run_key in self.table:
            self.delete(run_key)
        return False


class TableSeenIds:
    """``SeenIds`` in the cost table (see the module docstring)."""

    def __init__(self, tenant: TenantTables) -> None:
        self.t = tenant

    def __contains__(self, event_id: object) -> bool:
        if not isinstance(event_id, str):
            return False
        t = self.t
        seq = t.get(t.side_key("s", _id_part(event_id)))
        if not isinstance(seq, int) or seq >= t.ids_next:
            return False  # unknown, or written by a commit whose state was lost
        entry = t.get(t.side_key("i", str(seq)))
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == event_id):
            return False
        live = t.days.get(entry[1])
        return live is not None and seq >= live[0]  # a day that expired and came back starts anew

    def add(self, event_id: str, arrival_day: str) -> None:
        t = self.t
        seq = t.ids_next
        t.ids_next += 1
        t.set(t.side_key("i", str(seq)), [event_id, arrival_day])
        t.set(t.side_key("s", _id_part(event_id)), seq)
        live = t.days.get(arrival_day)
        if live is None:
            t.days[arrival_day] = [seq, seq]
        else:
            live[1] = seq

    def expire(self, through_day: str) -> None:
        t = self.t
        for day in sorted(d for d in t.days if d <= through_day):
            first, last = t.days.pop(day)
            t.gc.append((day, first, last))

    def to_json(self) -> dict[str, list[str]]:
        return {}


class TableRuns:
    """``RunBook`` in the cost table (see the module docstring)."""

    def __init__(self, tenant: TenantTables) -> None:
        self.t = tenant

    def get(self, run_id: str) -> RunSpend | None:
        version = self.t.current_run(run_id)
        return None if version is None else RunSpend.from_json(version, version.get("fired"))

    def put(self, run_id: str, run: RunSpend) -> None:
        t = self.t
        current = t.current_run(run_id)
        hour = run.last_arrival // 3600
        if current is not None and int(current["last"]) // 3600 == hour:
            log = int(current["log"])
        else:
            log = t.log_run(run_id, hour)  # the run's entry for its latest arrival hour
        t.write_run(run_id, {**run.to_json(), "fired": run.marks_json(), "log": log})

    def expire(self, idle_through: int) -> None:
        self.t.expire_runs(idle_through)

    def to_json(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return {}, None
