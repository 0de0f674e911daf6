"""The lake report: an HTML page with charts, made from the lake alone."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from exporter import run_export
from tests import exporter_helpers as h
from tests.pg_harness import Server


def test_report_of_a_lake(pg: Server, app_db: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with pg.connect(app_db, autocommit=True) as conn:
        run_export(str(lake), pg.settings(app_db), settle=dt.timedelta(0))
        users = h.add_users(conn, 7)
        h.add_watching(conn, users[:3], score=9)
        conn.execute("delete from app.ratings where user_id = %s", (users[0],))
        run_export(str(lake), pg.settings(app_db), settle=dt.timedelta(0))
    proc = h.run_cli(h.exporter_env(pg, app_db), "report", "--target", str(lake))
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "lake-report.html").read_text(encoding="utf-8")
    assert str(tmp_path / "lake-report.html") in proc.stdout
    assert "2 committed runs" in page
    assert page.count("<svg") >= 4  # rows per run, lag, activity, statuses, scores
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    # the numbers behind the charts: 7 new users and 3 wishlist entries in run 2, one rating gone
    assert re.search(r"run 2: users inserted or new 7<", page)
    assert re.search(r"run 2: wishlist inserted or new 3<", page)
    assert re.search(r"run 2: ratings deleted 1<", page)
    assert ">watching</text>" in page and ">score 9</text>" in page


def test_report_of_an_empty_lake_is_one_clear_line(pg: Server, app_db: str, tmp_path: Path) -> None:
    proc = h.run_cli(h.exporter_env(pg, app_db), "report", "--target", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: {tmp_path} holds no committed run yet: export to it first"
    ]
