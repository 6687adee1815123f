"""The initial-sync bench against mbsync runs end to end (bench/versus_mbsync.py), on a small mailbox.

It is what `make bench` reports for issue 7's "50,000 messages in ≤ 3× mbsync"; here only that both tools
ran on the same mailbox and ours mirrored all of it (no figure is asserted: tests never assert speed).
"""

from __future__ import annotations

import json

import pytest

from bench import versus_mbsync


def test_the_bench_times_mbsync_and_our_sync_on_the_same_mailbox(tmp_path, monkeypatch):
    monkeypatch.setattr(versus_mbsync, "RESULTS", tmp_path)
    result = versus_mbsync.main(["120"])
    assert (result["messages"], result["server_total"], result["synced"], result["messages_stored"]) == (120,) * 4
    assert result["mbsync_s"] > 0 and result["salesinbox_s"] > 0
    assert result["ratio"] == pytest.approx(result["salesinbox_s"] / result["mbsync_s"], rel=0.1)
    assert json.loads((tmp_path / "versus-mbsync.json").read_text()) == result
