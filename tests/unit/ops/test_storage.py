"""The storage exporter's gauges, and the check that the disk backs the store's reservations."""

from __future__ import annotations

import shutil
from pathlib import Path

from ops.storage import StorageMetrics, unbacked_bytes
from ops.streams import StreamReport


def test_a_store_sized_beyond_the_free_disk_is_reported_short(tmp_path: Path) -> None:
    store = tmp_path / "jetstream"
    store.mkdir()
    (store / "data").write_bytes(b"x" * 4096)
    free = shutil.disk_usage(tmp_path).free

    assert unbacked_bytes(store, 1024) == 0
    assert unbacked_bytes(tmp_path / "not-yet", free // 2) == 0
    assert unbacked_bytes(store, free + 4096 + 10**12) >= 10**12 - 10**9


def test_the_gauges_show_each_stream_against_its_limit_and_skip_missing_ones() -> None:
    metrics = StorageMetrics(alert_at_percent=75.0)
    metrics.update(
        [
            StreamReport("DLQ", messages=3, bytes=900, max_bytes=1000),
            StreamReport("CONTROL", missing=True),
        ]
    )

    text = metrics.render().decode()

    assert 'tradeops_stream_bytes{stream="DLQ"} 900.0' in text
    assert 'tradeops_stream_max_bytes{stream="DLQ"} 1000.0' in text
    assert 'stream="CONTROL"' not in text
    assert "tradeops_stream_alert_ratio 0.75" in text
    assert "tradeops_storage_scrape_ok 1.0" in text
