"""jieba's IDF table, parsed once and then read from the cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from services.need_analyzer.adapters.models import idf_table


def test_the_parsed_table_is_cached_until_its_source_changes(tmp_path: Path) -> None:
    source = tmp_path / "idf.txt"
    source.write_text("退款 5.0\n快递 3.0\n的 1.0\n", "utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert idf_table(source, cache) == ({"退款": 5.0, "快递": 3.0, "的": 1.0}, 3.0)
    assert [path.name for path in cache.iterdir()] == ["jieba-idf.marshal"]
    # Read from the cache while the source's size and time are those it was parsed at (a
    # same-size rewrite with its old time is not parsed again)...
    parsed_at = source.stat().st_mtime_ns
    source.write_text("退款 6.0\n快递 3.0\n的 1.0\n", "utf-8")
    os.utime(source, ns=(parsed_at, parsed_at))
    assert idf_table(source, cache) == ({"退款": 5.0, "快递": 3.0, "的": 1.0}, 3.0)
    # ...and parsed again once it changes.
    os.utime(source, ns=(parsed_at + 1, parsed_at + 1))
    assert idf_table(source, cache) == ({"退款": 6.0, "快递": 3.0, "的": 1.0}, 3.0)


def test_an_unreadable_cache_is_rebuilt(tmp_path: Path) -> None:
    source = tmp_path / "idf.txt"
    source.write_text("退款 5.0\n", "utf-8")
    (tmp_path / "jieba-idf.marshal").write_bytes(b"\x00not marshal")
    assert idf_table(source, tmp_path) == ({"退款": 5.0}, 5.0)
    assert idf_table(source, tmp_path) == ({"退款": 5.0}, 5.0)
