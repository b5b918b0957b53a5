"""The shared CSV contact importer against real-world file shapes: encodings, delimiters, quoting, bad rows."""

import codecs
import csv
import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.contacts.csv_import import (
    CsvImportError,
    ImportedContact,
    RejectedRow,
    import_contacts_csv,
    normalise_phone,
    rejected_rows_csv,
)
from tests.examples import EXAMPLES_DIR


def rejected_of(result):
    return [(row.line, row.reason) for row in result.rejected]


def phones_of(result):
    return [(contact.line, contact.phone) for contact in result.contacts]


# --- the shared example files ---------------------------------------------------------------------------


def test_messy_example_with_brazil_as_default_region():
    result = import_contacts_csv((EXAMPLES_DIR / "contacts-messy.csv").read_bytes(), default_region="BR")

    assert (result.encoding, result.delimiter) == ("utf-8-sig", ";")
    assert result.columns == ["Telefone", "Nome", "Pedido"]
    assert result.phone_column == "Telefone"
    assert result.contacts == [
        ImportedContact(
            2,
            "+5541991234567",
            {
                "Telefone": "+5541991234567",
                "Nome": "Júlia",
                "Pedido": "B-1",
                "phone": "+5541991234567",
                "name": "Júlia",
            },
        ),
        ImportedContact(
            3,
            "+5541991230000",
            {
                "Telefone": "+5541991230000",
                "Nome": "Sem país",
                "Pedido": "B-2",
                "phone": "+5541991230000",
                "name": "Sem país",
            },
        ),
        ImportedContact(
            7,
            "+5541988887777",
            {
                "Telefone": "+5541988887777",
                "Nome": 'Maria "Mari" Souza',
                "Pedido": "B-6",
                "phone": "+5541988887777",
                "name": 'Maria "Mari" Souza',
            },
        ),
    ]
    assert rejected_of(result) == [
        (4, "invalid phone number 'not-a-number'"),
        (5, "empty phone"),
        (6, "duplicate of line 2 (+5541991234567)"),
    ]
    assert result.rejected[2].raw == {"Telefone": "+55 (41) 99123-4567", "Nome": "Duplicada", "Pedido": "B-5"}


def test_messy_example_with_us_as_default_region_rejects_the_local_brazilian_number():
    result = import_contacts_csv((EXAMPLES_DIR / "contacts-messy.csv").read_bytes(), default_region="US")

    assert phones_of(result) == [(2, "+5541991234567"), (7, "+5541988887777")]
    assert rejected_of(result) == [
        (3, "invalid phone number '41 99123-0000': too long for region US"),
        (4, "invalid phone number 'not-a-number'"),
        (5, "empty phone"),
        (6, "duplicate of line 2 (+5541991234567)"),
    ]


def test_plain_example():
    result = import_contacts_csv((EXAMPLES_DIR / "contacts.csv").read_bytes(), default_region="US")

    assert (result.encoding, result.delimiter, result.phone_column) == ("utf-8", ",", "phone")
    assert result.columns == ["phone", "name", "order_id", "city"]
    assert [contact.fields for contact in result.contacts] == [
        {"phone": "+15005550006", "name": "Ana", "order_id": "A-1001", "city": "Curitiba"},
        {"phone": "+15005550007", "name": "Bruno", "order_id": "A-1002", "city": "São Paulo"},
        {"phone": "+14155550132", "name": "Carla", "order_id": "A-1003", "city": "Oakland"},
    ]
    assert phones_of(result) == [(2, "+15005550006"), (3, "+15005550007"), (4, "+14155550132")]
    assert rejected_of(result) == [(5, "duplicate of line 2 (+15005550006)")]


# --- encodings ------------------------------------------------------------------------------------------

TEXT = "telefone;nome;cidade\n+5541991234567;Conceição;São José\n+5541988887777;Zoë “Zé”;Curitiba\n"


@pytest.mark.parametrize(
    "data, encoding",
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("cp1252"), "cp1252"),
        (TEXT.encode("utf-16"), "utf-16"),
    ],
    ids=["utf-8", "utf-8 with BOM", "cp1252", "utf-16 with BOM"],
)
def test_encodings_read_the_same_contacts(data, encoding):
    result = import_contacts_csv(data, default_region="BR")

    assert result.encoding == encoding
    assert result.columns == ["telefone", "nome", "cidade"]
    assert [contact.fields["name"] for contact in result.contacts] == ["Conceição", "Zoë “Zé”"]
    assert result.contacts[0].fields["cidade"] == "São José"


def test_bytes_undefined_in_cp1252_fall_back_to_latin_1():
    data = "phone,name\n+15005550006,Ana\x81\n".encode("latin-1")

    result = import_contacts_csv(data)

    assert result.encoding == "latin-1"
    assert result.contacts[0].fields["name"] == "Ana\x81"


# --- delimiters and quoting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, delimiter",
    [
        ('phone,name,city\n+15005550006,"Souza, Maria",Curitiba\n', ","),
        ("phone;name;city\n+15005550006;Souza, Maria;Curitiba\n", ";"),
        ("phone;amount;name\n+15005550006;12,50;Maria\n+15005550007;3,10;Ana\n", ";"),
        ("phone\tname\tcity\n+15005550006\tSouza, Maria\tCuritiba\n", "\t"),
        ("phone|name|city\n+15005550006|Souza, Maria|Curitiba\n", "|"),
        ('phone, name, city\n+15005550006, "Souza, Maria", Curitiba\n', ","),
    ],
    ids=["comma", "semicolon", "semicolon with decimal commas", "tab", "pipe", "comma and spaces"],
)
def test_delimiter_is_sniffed(text, delimiter):
    result = import_contacts_csv(text.encode())

    assert result.delimiter == delimiter
    assert result.contacts[0].phone == "+15005550006"
    assert result.contacts[0].fields["name"] in {"Souza, Maria", "Maria"}
    assert not result.rejected


def test_single_column_file():
    result = import_contacts_csv(b"phone\n+15005550006\n(415) 555-0132\n")

    assert result.columns == ["phone"]
    assert phones_of(result) == [(2, "+15005550006"), (3, "+14155550132")]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_line_numbers_are_physical_lines_across_quoted_multi_line_fields_and_blank_lines(newline):
    lines = [
        "phone,name,note",
        '+15005550006,"Ana ""A"" Lima","first line',
        "second line",
        'third line"',
        "",
        "not-a-number,Bad,x",
        "   ",
        ",,",
        '+15005550007,Bruno,"one, two"',
        "+15005550006,Ana again,",
    ]
    result = import_contacts_csv(newline.join(lines).encode())

    assert phones_of(result) == [(2, "+15005550006"), (9, "+15005550007")]
    assert result.contacts[0].fields["name"] == 'Ana "A" Lima'
    assert result.contacts[0].fields["note"] == newline.join(["first line", "second line", "third line"])
    assert result.contacts[1].fields["note"] == "one, two"
    assert rejected_of(result) == [
        (6, "invalid phone number 'not-a-number'"),
        (10, "duplicate of line 2 (+15005550006)"),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.text(alphabet="ab ,;\"\n\r'", max_size=12)), min_size=1, max_size=8),
    st.sampled_from([",", ";", "\t"]),
)
def test_line_numbers_match_what_csv_writer_wrote(rows, delimiter):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["phone", "note"])
    expected_lines, line = [], 2
    for index, (valid, note) in enumerate(rows):
        phone = f"+1500555{index:04d}" if valid else f"bad{index}"
        writer.writerow([phone, note])
        expected_lines.append(line)
        line += 1 + note.count("\n") + note.count("\r") - note.count("\r\n")

    result = import_contacts_csv(out.getvalue().encode())

    assert sorted([c.line for c in result.contacts] + [r.line for r in result.rejected]) == expected_lines
    assert [c.fields["note"] for c in result.contacts] == [note.strip() for valid, note in rows if valid]


def test_unclosed_quote_is_an_error_naming_its_line():
    data = b'phone,name\n+15005550006,Ana\n+15005550007,"Bruno\n+15005550008,Carla\n'

    with pytest.raises(CsvImportError, match=r"line 3: a quoted field starting here is never closed"):
        import_contacts_csv(data)


# --- rows and header shapes -----------------------------------------------------------------------------


def test_short_rows_are_padded_and_long_rows_rejected_unless_the_extra_cells_are_empty():
    data = b"phone;name;city\n+15005550006\n+15005550007;Bruno;Lima;;\n+15005550008;Carla;Rio;extra\n"

    result = import_contacts_csv(data)

    assert [contact.fields for contact in result.contacts] == [
        {"phone": "+15005550006", "name": "", "city": ""},
        {"phone": "+15005550007", "name": "Bruno", "city": "Lima"},
    ]
    assert rejected_of(result) == [(4, "has 4 cells but the header has 3 columns")]
    assert result.rejected[0].raw == {"phone": "+15005550008", "name": "Carla", "city": "Rio"}


def test_empty_and_repeated_header_names_are_renamed_deterministically():
    result = import_contacts_csv(b" Phone ,,name,name,, name_2 \n+15005550006,a,b,c,d,e\n")

    assert result.columns == ["Phone", "column_2", "name", "name_2", "column_5", "name_2_2"]
    assert result.contacts[0].fields == {
        "Phone": "+15005550006",
        "column_2": "a",
        "name": "b",
        "name_2": "c",
        "column_5": "d",
        "name_2_2": "e",
        "phone": "+15005550006",
    }


@pytest.mark.parametrize(
    "header, expected",
    [
        ("Telefone;Nome", "Telefone"),
        ("nome;Número de Telefone", "Número de Telefone"),
        ("CELULAR;nome", "CELULAR"),
        ("name;WhatsApp", "WhatsApp"),
        ("name;MSISDN", "MSISDN"),
        ("name;To", "To"),
        ("name; Phone Number ", "Phone Number"),
        ("name;phone_number", "phone_number"),
        ("name;TEL", "TEL"),
        ("name;Home Phone", "Home Phone"),
        ("Phone;Mobile;name", "Mobile"),
        ("email;telefone 1;telefone 2", "telefone 1"),
    ],
)
def test_phone_column_is_found_by_name(header, expected):
    cells = header.split(";")
    row = ";".join("+15005550006" if cell.strip() == expected else "x" for cell in cells)

    result = import_contacts_csv(f"{header}\n{row}\n".encode())

    assert result.phone_column == expected
    assert result.contacts[0].fields[expected] == "+15005550006"


@pytest.mark.parametrize(
    "header, name",
    [
        ("phone,Nome", "Ana"),
        ("phone,Full Name", "Ana"),
        ("phone,first_name,last_name", "Ana"),
        ("phone,name,Nome", "Ana"),
        ("phone,city", None),
    ],
)
def test_a_name_like_column_gives_the_name_field(header, name):
    row = ["+15005550006", "Ana", "Lima"][: header.count(",") + 1]

    result = import_contacts_csv(f"{header}\n{','.join(row)}\n".encode())

    assert result.contacts[0].fields.get("name") == name


def test_phone_column_chosen_by_the_caller():
    data = b"Phone,Mobile,name\n+15005550006,+15005550007,Ana\n+15005550006,+15005550008,Ana\n"

    chosen = import_contacts_csv(data, phone_column="Phone")
    folded = import_contacts_csv(data, phone_column=" phone ")
    default = import_contacts_csv(data)

    assert chosen.phone_column == folded.phone_column == "Phone"
    assert phones_of(chosen) == [(2, "+15005550006")]
    assert rejected_of(chosen) == [(3, "duplicate of line 2 (+15005550006)")]
    assert default.phone_column == "Mobile"
    assert phones_of(default) == [(2, "+15005550007"), (3, "+15005550008")]


def test_unknown_chosen_column_lists_the_columns():
    with pytest.raises(CsvImportError, match=r"there is no column 'cell'; the columns are 'Phone', 'name'"):
        import_contacts_csv(b"Phone,name\n+15005550006,Ana\n", phone_column="cell")


# --- unusable files -------------------------------------------------------------------------------------


def test_missing_phone_column_lists_the_columns_and_how_to_choose_one():
    with pytest.raises(CsvImportError) as raised:
        import_contacts_csv(b"email,name\nana@example.com,Ana\n")

    message = str(raised.value)
    assert "no phone column found among the columns 'email', 'name'" in message
    assert "choose which column holds the phone numbers" in message
    assert raised.value.columns == ["email", "name"]


def test_a_first_line_of_data_is_reported_as_a_missing_header():
    with pytest.raises(CsvImportError, match="the first line holds data .* not column names"):
        import_contacts_csv(b"+15005550006,Ana\n+15005550007,Bruno\n")


@pytest.mark.parametrize(
    "data",
    [b"", b"\xef\xbb\xbf", b"\n\n   \r\n", b";;;\n,,\n"],
    ids=["nothing", "only a BOM", "blank lines", "only delimiters"],
)
def test_empty_file(data):
    with pytest.raises(CsvImportError, match="the file is empty"):
        import_contacts_csv(data)


def test_header_without_rows():
    with pytest.raises(CsvImportError, match=r"has a header \(line 1\) but no contact rows"):
        import_contacts_csv(b"phone,name\n\n")


@pytest.mark.parametrize(
    "data, message",
    [
        (random.Random(7).randbytes(4096), "binary file"),
        (bytes(range(1, 32)) * 100, "binary file"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"x" * 100, "spreadsheet workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"x" * 100, "spreadsheet workbook"),
        ("phone\n\x00\n".encode("utf-16"), "binary file"),
        (codecs.BOM_UTF16_LE + b"p\x00h\x00\x00\xd8", "starts like UTF-16 text but is not"),
    ],
    ids=["random bytes", "control characters", "xlsx", "xls", "utf-16 with NUL", "broken utf-16"],
)
def test_binary_garbage_is_refused(data, message):
    with pytest.raises(CsvImportError, match=message):
        import_contacts_csv(data)


def test_unknown_default_region():
    with pytest.raises(CsvImportError, match="unknown default region 'XX'"):
        import_contacts_csv(b"phone\n+15005550006\n", default_region="XX")


def test_a_file_with_only_invalid_rows_returns_them_all_rejected():
    result = import_contacts_csv(b"phone,name\n123,a\nabc,b\n,c\n+999 1234,d\n")

    assert result.contacts == []
    assert rejected_of(result) == [
        (2, "invalid phone number '123': too short for region US"),
        (3, "invalid phone number 'abc'"),
        (4, "empty phone"),
        (5, "invalid phone number '+999 1234': unknown country code"),
    ]


# --- phone numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, region, expected",
    [
        ("+1 (415) 555-0132", "US", "+14155550132"),
        ("415.555.0132", "US", "+14155550132"),
        ("  415 555 0132  ", "us", "+14155550132"),
        ("+55 (41) 99123-4567", "US", "+5541991234567"),
        ("41 99123-4567", "BR", "+5541991234567"),
        ("0055 41 99123-4567", "US", "+5541991234567"),
        ("00 55 41 99123 4567", "BR", "+5541991234567"),
        ("011 55 41 99123 4567", "US", "+5541991234567"),
        ("whatsapp:+5541991234567", "US", "+5541991234567"),
        ("WhatsApp:+14155550132", "BR", "+14155550132"),
        ("tel:+1-415-555-0132", "US", "+14155550132"),
        ('="+5541991234567"', "US", "+5541991234567"),
        ("'+5541991234567", "US", "+5541991234567"),
        ("5.541991234567E+12", "US", "+5541991234567"),
        ("5,541991234567E+12", "BR", "+5541991234567"),
        ("1.4155550132E+10", "US", "+14155550132"),
        ("+44 20 7946 0958", None, "+442079460958"),
    ],
)
def test_normalise_phone(text, region, expected):
    assert normalise_phone(text, region) == expected


@pytest.mark.parametrize(
    "text, region, reason",
    [
        ("", "US", "empty phone"),
        ("   ", "US", "empty phone"),
        ("not-a-number", "US", "invalid phone number 'not-a-number'"),
        ("41 99123-0000", "US", "invalid phone number '41 99123-0000': too long for region US"),
        ("555-0132", "US", "invalid phone number '555-0132': not a valid number for region US"),
        ("+1 415 555 01322", "US", "invalid phone number '+1 415 555 01322': too long"),
        ("+999 1234 5678", "US", "invalid phone number '+999 1234 5678': unknown country code"),
        ("4155550132", None, "invalid phone number '4155550132': unknown country code; start it with +country code"),
        (
            "5.54199E+12",
            "US",
            "invalid phone number '5.54199E+12': Excel rounded it to scientific notation; "
            "format the phone column as text and export the file again",
        ),
        ("1" * 60, "US", "invalid phone number '1111111111111111111111111111111111111...': too long for region US"),
    ],
)
def test_normalise_phone_refuses_with_a_reason(text, region, reason):
    with pytest.raises(ValueError) as raised:
        normalise_phone(text, region)

    assert str(raised.value) == reason


# --- rejected rows for download -------------------------------------------------------------------------


def test_rejected_rows_csv_is_safe_to_open_in_a_spreadsheet():
    data = b'phone,=cmd,note\n=HYPERLINK("http://evil"),+1,-2\n@SUM(A1),x,"a\r\nb"\n"not, a number",plain,ok\n'
    result = import_contacts_csv(data, phone_column="phone")

    text = rejected_rows_csv(result.rejected, result.columns)

    assert list(csv.reader(io.StringIO(text))) == [
        ["line", "reason", "phone", "'=cmd", "note"],
        ["2", "invalid phone number '=HYPERLINK(\"http://evil\")'", '\'=HYPERLINK("http://evil")', "'+1", "'-2"],
        ["3", "invalid phone number '@SUM(A1)'", "'@SUM(A1)", "x", "a\r\nb"],
        ["5", "invalid phone number 'not, a number'", "not, a number", "plain", "ok"],
    ]


def test_rejected_rows_csv_prefixes_leading_tab_and_carriage_return():
    rows = [RejectedRow(7, "empty phone", {"phone": "", "note": "\tcmd", "other": "\rcmd"})]

    text = rejected_rows_csv(rows, ["phone", "note", "other", "missing"])

    assert list(csv.reader(io.StringIO(text)))[1] == ["7", "empty phone", "", "'\tcmd", "'\rcmd", ""]


def test_rejected_rows_csv_of_nothing_is_just_the_header():
    assert rejected_rows_csv([], ["phone", "name"]) == "line,reason,phone,name\r\n"
