"""Hostile CSV files: too many columns are refused with a message naming the cap; repeated names cost linear time."""

import io

import pytest

from app.contacts.csv_import import MAX_COLUMNS, CsvImportError, import_contacts_csv
from app.extensions import db
from app.models import Audience, Campaign, Contact


def wide_csv(columns: int, rows: int) -> bytes:
    header = "phone," + ",".join(f"c{n}" for n in range(columns - 1))
    lines = [f"+1500555{row:04d}," + ",".join("x" * (columns - 1)) for row in range(rows)]
    return "\n".join([header, *lines]).encode()


def test_the_default_cap_is_200_columns():
    assert MAX_COLUMNS == 200
    assert len(import_contacts_csv(wide_csv(200, 2)).columns) == 200
    with pytest.raises(CsvImportError) as refused:
        import_contacts_csv(wide_csv(201, 2))
    assert "201 columns" in str(refused.value) and "200 allowed" in str(refused.value)
    assert "CSV_MAX_COLUMNS" in str(refused.value)


def test_a_16_kb_header_of_one_repeated_name_gets_unique_names():
    header = ",".join(["phone"] + ["a"] * 8000)
    result = import_contacts_csv(f"{header}\n+15005550006\n".encode(), max_columns=10_000)
    assert len(result.columns) == 8001 and len(set(result.columns)) == 8001
    assert result.columns[1:4] == ["a", "a_2", "a_3"] and result.columns[-1] == "a_8000"


def test_suffixes_skip_names_already_written():
    result = import_contacts_csv(b"phone,a,a_2,a,a\n+15005550006,1,2,3,4\n")
    assert result.columns == ["phone", "a", "a_2", "a_3", "a_4"]


def test_20000_columns_by_200_rows_are_refused_before_anything_is_stored(app, api):
    data = wide_csv(20_000, 200)
    response = api.post("/api/audiences", data={"file": (io.BytesIO(data), "wide.csv"), "name": "Wide"})
    assert response.status_code == 400, response.text
    assert "20000 columns" in response.json["error"] and "CSV_MAX_COLUMNS" in response.json["error"]
    assert db.session.scalar(db.select(db.func.count()).select_from(Contact)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(Audience)) == 0
    upload = api.post("/api/campaign/upload", data={"file": (io.BytesIO(data), "wide.csv"), "body": "hi"})
    assert upload.status_code == 400 and "CSV_MAX_COLUMNS" in upload.json["error"]
    assert db.session.scalar(db.select(db.func.count()).select_from(Campaign)) == 0


def test_the_cap_is_configurable(app, api):
    app.config["CSV_MAX_COLUMNS"] = 3
    refused = api.post("/api/audiences", data={"file": (io.BytesIO(b"phone,a,b,c\n+15005550006,1,2,3\n"), "x.csv")})
    assert refused.status_code == 400 and "more than the 3 allowed" in refused.json["error"]
    accepted = api.post("/api/audiences", data={"file": (io.BytesIO(b"phone,a,b\n+15005550006,1,2\n"), "x.csv")})
    assert accepted.status_code == 201
