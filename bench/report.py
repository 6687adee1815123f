"""Turns bench/results/*.json into the table in bench/README.md."""

from __future__ import annotations

import json
from pathlib import Path

HEADER = """# Benchmarks

`make bench` runs them on this machine and rewrites these tables from
`bench/results/*.json`; the notes below them are written by hand.
Targets (step 2, 10,000 messages on 2 cores): first 50 conversations ≤ 2 s,
all listed ≤ 10 s, all searchable ≤ 21 s.

"""


def write_readme(results: Path) -> None:
    rows = ["| backend | messages | MB | first 50 conversations (s) | all listed (s) | all searchable (s) "
            "| messages/s | peak RSS (MB) |", "|---|---|---|---|---|---|---|---|"]
    for path in sorted(results.glob("sync-*.json")):
        r = json.loads(path.read_text())
        rows.append(f"| {r['backend']} | {r['count']} | {r['megabytes']} | {r.get('first_50_conversations_s')} "
                    f"| {r['all_listed_s']} | {r['all_searchable_s']} | {r['messages_per_s']} | {r['peak_rss_mb']} |")
    crm = ["", "CRM core (1,000 persons, 2,000 deals; milliseconds, p50 / p95):", "",
           "| backend | list 200 deals | GET /me | create a deal |", "|---|---|---|---|"]
    for path in sorted(results.glob("crm-*.json")):
        r = json.loads(path.read_text())
        cells = [f"{r[k]['p50_ms']} / {r[k]['p95_ms']}" for k in ("api_list_deals_200", "api_me", "api_create_deal")]
        crm.append(f"| {r['backend']} | " + " | ".join(cells) + " |")
    idle = ["", "Capacity (step 6; PostgreSQL, real `salesinbox worker` processes: one sync, one web; targets: "
            "500 accounts in IDLE within 1 GB RSS, new mail → SSE p95 ≤ 2 s at 20 deliveries/s):", "",
            "| accounts | all in IDLE (s) | IMAP connections | sync RSS (MB) | RSS after deliveries (MB) "
            "| deliveries/s | SSE p50 / p95 / max (s) |", "|---|---|---|---|---|---|---|"]
    for path in sorted(results.glob("idle-*.json")):
        r = json.loads(path.read_text())
        sse = r["sse"]
        idle.append(f"| {r['accounts']} | {r['all_in_idle_s']} | {r['imap_connections']} "
                    f"| {r['sync_rss_with_children_mb']} | {r['sync_rss_after_deliveries_mb']} | {sse['rate_per_s']} "
                    f"| {sse['p50_s']} / {sse['p95_s']} / {sse['max_s']} |")
    faults = ["", "Faults, measured (`python -m bench.faults`: connections cut at a random byte during FETCH, IDLE,",
              "SEARCH, APPEND, STORE and MOVE; totals over every kind):", "",
              "| backend | trials | cuts | lost | duplicated | stale-UID writes | writes audited | s | passed |",
              "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(results.glob("faults-*.json")):
        r = json.loads(path.read_text())
        t = r.get("sum", {})
        writes = sum(kind.get("writes", 0) for kind in r.get("kinds", {}).values())
        faults.append(f"| {r.get('backend')} | {t.get('trials')} | {t.get('cuts')} | {t.get('lost')} "
                      f"| {t.get('duplicated')} | {t.get('stale_writes')} | {writes} | {r.get('seconds')} "
                      f"| {r.get('passed')} |")
    readme = results.parent / "README.md"
    readme.write_text(
        HEADER
        + "\n".join(rows + _versus(results) + crm + _capacity(results) + idle + faults)
        + "\n\n"
        + MARKER
        + _hand_notes(readme)
    )


def _versus(results: Path) -> list[str]:
    path = results / "versus-mbsync.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    return [
        "",
        "Initial sync against mbsync, the same mailbox in one run (`python -m bench.versus_mbsync`; "
        "`salesinbox sync --once` by the CLI on the embedded SQLite; target ≤ 3× mbsync):",
        "",
        "| messages | MB | mbsync, median of 3 (s) | mbsync runs (s) | salesinbox (s) | ratio "
        "| synced / on the server |",
        "|---|---|---|---|---|---|---|",
        f"| {r['messages']:,} | {r['megabytes']} | {r['mbsync_s']} | {', '.join(map(str, r.get('mbsync_runs_s', [])))} "
        f"| {r['salesinbox_s']} | {r['ratio']}× | {r['synced']:,} / {r['server_total']:,} |",
    ]


CAPACITY_CASES = (
    ("first_page_inbox", "Inbox, first page (51 rows)", 300),
    ("first_page_sent", "Sent, first page", 300),
    ("first_page_archive", "Archive, first page", 300),
    ("unread_counts", "unread counts (the folder list, with Needs linking)", 300),
    ("search_common_word", "search, common word", 1000),
    ("search_rare_word", "search, rare word", 1000),
    ("search_phrase", "search, two words", 1000),
    ("search_rtl_word", "search, Hebrew word", 1000),
)


def _capacity(results: Path) -> list[str]:
    path = results / "capacity-postgresql.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    g = r["generation"]
    lines = [
        "",
        f"Capacity (issue 7; `python -m bench capacity`): {r['messages']:,} messages of one company on PostgreSQL, "
        f"{r['conversations']:,} conversations, {r['locations']:,} locations in 8 accounts, written with COPY "
        f"in {g['total_s']:.0f} s ({g['generate_and_copy_s']:.0f} s generating and copying, "
        f"{g['search_documents_and_indexes_s']:.0f} s full-text documents and indexes, {g['vacuum_analyze_s']:.0f} s "
        "VACUUM ANALYZE). Through the services, as user 1 (a private account and sales@: about half the mail); "
        "milliseconds:",
        "",
        "| case | p50 | p95 | target p95 | rows | matches in the company |",
        "|---|---|---|---|---|---|",
    ]
    for key, name, target in CAPACITY_CASES:
        f = r["figures"][key]
        query = f" ({f['query']})" if "query" in f else ""
        lines.append(
            f"| {name}{query} | {f['p50_ms']} | {f['p95_ms']} | {target} | {f.get('rows', '')} "
            f"| {f.get('company_hits', '')} |"
        )
    return lines


MARKER = "<!-- Below: notes written by hand. bench/report.py rewrites only what is above this line. -->"


def _hand_notes(readme: Path) -> str:
    """What follows the marker in the README as it is: findings and history, kept across runs."""
    text = readme.read_text() if readme.exists() else ""
    return text.split(MARKER, 1)[1] if MARKER in text else "\n"

