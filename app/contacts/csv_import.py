"""Contact import from user-supplied CSV files, shared by campaigns, audiences, the JSON API and the CLI.

Real files come from Excel, Google Sheets and CRMs in many shapes, so this module sniffs the encoding and the
delimiter, finds the phone column by name, normalises numbers to E.164 and reports every row it rejects with its
physical line number and a plain reason, keeping the valid rows. It is pure (standard library and phonenumbers)
and streams the rows, so any layer can call it; size limits belong to the caller.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

# Column names are compared after _fold() (accents, case, spaces and punctuation removed).
# Earlier names win when several columns match: a mobile number is the better one to message.
PHONE_COLUMN_NAMES = (
    "mobile",
    "mobilephone",
    "mobilenumber",
    "mobileno",
    "cell",
    "cellphone",
    "cellular",
    "celular",
    "cel",
    "numerocelular",
    "numerodecelular",
    "telemovel",
    "movil",
    "handy",
    "whatsapp",
    "whatsappnumber",
    "phone",
    "phonenumber",
    "phoneno",
    "telephone",
    "telefone",
    "telefono",
    "numerotelefone",
    "numerodetelefone",
    "tel",
    "fone",
    "msisdn",
    "number",
    "numero",
    "to",
)
# Fallback: a column whose folded name contains one of these words ("Home Phone", "Telefone 1").
PHONE_COLUMN_WORDS = ("mobile", "celular", "cell", "whatsapp", "phone", "telefone", "telefono", "fone", "msisdn")
NAME_COLUMN_NAMES = (
    "name",
    "fullname",
    "nome",
    "nomecompleto",
    "nombre",
    "contactname",
    "customername",
    "nomedocliente",
    "firstname",
    "primeironome",
    "givenname",
)

ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # latin-1 decodes any byte, so it is the last resort
DELIMITERS = (",", ";", "\t", "|")  # ties go to the earlier one
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_SAMPLE_CHARS = 64 * 1024
_SNIFF_ROWS = 50
_END_SENTINEL = "\x00"  # appended as a last line: the input never holds NUL, and an unclosed quote swallows it
_SHOWN_TEXT_MAX = 40
_LISTED_COLUMNS_MAX = 30
MAX_COLUMNS = 200  # the default cap on columns (CSV_MAX_COLUMNS): each becomes a field stored on every contact
_BINARY_MESSAGE = "this is a binary file, not CSV text: export the contacts as CSV and upload that"

_URI_PREFIX = re.compile(r"^(?:whatsapp|tel|sms):", re.IGNORECASE)
_EXCEL_TEXT = re.compile(r'^="(.*)"$')  # ="+5541..." is how Excel is told to keep a number as text
_SCIENTIFIC = re.compile(r"^\+?(\d)(?:[.,](\d+))?[eE]\+?(\d+)$")
_FORMATTING = re.compile(r"[\s().\-/]")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 only: cp1252 text may hold C1
_BLANK_CHARACTERS = " \t\r\n" + "".join(DELIMITERS)

_POSSIBLE_REASONS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}
_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


class CsvImportError(ValueError):
    """The file cannot be used at all; the message tells the user what to fix.

    `columns` is the header when the phone column is what is missing, so a form can offer the choice.
    """

    def __init__(self, message: str, columns: list[str] | None = None):
        super().__init__(message)
        self.columns = columns or []


@dataclass(slots=True)
class ImportedContact:
    line: int
    phone: str
    fields: dict[str, str]


@dataclass(slots=True)
class RejectedRow:
    line: int
    reason: str
    raw: dict[str, str]


@dataclass(slots=True)
class ImportResult:
    columns: list[str]
    phone_column: str
    contacts: list[ImportedContact]
    rejected: list[RejectedRow]
    encoding: str
    delimiter: str


def import_contacts_csv(
    data: bytes, default_region: str | None = "US", phone_column: str | None = None, max_columns: int = MAX_COLUMNS
) -> ImportResult:
    """Read contacts from CSV bytes: valid rows become contacts, bad rows are rejected with line and reason.

    Numbers without a +country code are read as numbers of `default_region`. `phone_column` names the
    column to use; without it the column is found by its name. Raises CsvImportError when the file is
    unusable (empty, binary, no header, more than `max_columns` columns or no phone column).
    """
    region = _check_region(default_region)
    encoding = _detect_encoding(data)
    codec = "utf-8-sig" if encoding.startswith("utf-8") else encoding
    sample = _text_stream(data, codec).read(_SAMPLE_CHARS)
    _refuse_control_characters(sample)
    delimiter = _sniff_delimiter(sample, truncated=len(sample) == _SAMPLE_CHARS)

    lines = itertools.chain(_text_stream(data, codec), [_END_SENTINEL + "\n"])
    records = _records(csv.reader(lines, delimiter=delimiter, skipinitialspace=True))
    header_line, header = next(records, (0, None))
    if header is None:
        raise CsvImportError("the file is empty: it has no header line and no contacts")
    if max_columns and len(header) > max_columns:
        raise CsvImportError(
            f"the header (line {header_line}) has {len(header)} columns, more than the {max_columns} allowed "
            "(CSV_MAX_COLUMNS): keep only the columns the messages need and upload again"
        )
    columns = _column_names(header)
    phone_index = _phone_column_index(columns, phone_column, region)
    contacts, rejected = _read_rows(records, columns, phone_index, _name_column_index(columns, phone_index), region)
    if not contacts and not rejected:
        raise CsvImportError(f"the file has a header (line {header_line}) but no contact rows")
    return ImportResult(columns, columns[phone_index], contacts, rejected, encoding, delimiter)


def _read_rows(records, columns: list[str], phone_index: int, name_index: int | None, region: str):
    """The contacts of the data rows and the rows rejected, each with its line and reason."""
    width, chosen_column = len(columns), columns[phone_index]
    first_line_of: dict[str, int] = {}
    contacts: list[ImportedContact] = []
    rejected: list[RejectedRow] = []
    for line, row in records:
        if len(row) > width:
            extra = row[width:]
            del row[width:]
            if any(extra):
                reason = f"has {width + len(extra)} cells but the header has {width} columns"
                rejected.append(RejectedRow(line, reason, dict(zip(columns, row))))
                continue
        elif len(row) < width:
            row.extend([""] * (width - len(row)))
        fields = dict(zip(columns, row))
        try:
            phone = normalise_phone(row[phone_index], region)
        except ValueError as error:
            rejected.append(RejectedRow(line, str(error), fields))
            continue
        first_line = first_line_of.setdefault(phone, line)
        if first_line != line:
            rejected.append(RejectedRow(line, f"duplicate of line {first_line} ({phone})", fields))
            continue
        fields[chosen_column] = phone
        fields["phone"] = phone
        if name_index is not None:
            fields["name"] = row[name_index]
        contacts.append(ImportedContact(line, phone, fields))
    return contacts, rejected


def normalise_phone(text: str, default_region: str | None = "US") -> str:
    """Return `text` as an E.164 number, or raise ValueError with a reason a user can act on.

    Accepts spaces, dots, dashes and parentheses, a leading 00 international prefix, "whatsapp:", "tel:"
    and "sms:" prefixes, Excel's ="..." text wrapper, and Excel's scientific notation when it kept every
    digit (5.541991234567E+12); rounded scientific notation is refused because the digits are lost.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty phone")
    default_region = default_region.upper() if default_region else None
    shown = _shown(text)
    cleaned = _URI_PREFIX.sub("", _EXCEL_TEXT.sub(r"\1", text)).strip().lstrip("'")

    scientific = _SCIENTIFIC.match(cleaned)
    if scientific:
        digits = _exact_scientific_digits(*scientific.groups())
        if digits is None:
            raise ValueError(
                f"invalid phone number {shown}: Excel rounded it to scientific notation; "
                "format the phone column as text and export the file again"
            )
        # Excel drops the leading + of an international number, so try that reading too.
        candidates = (digits, "+" + digits)
    else:
        compact = _FORMATTING.sub("", cleaned)
        candidates = ("+" + compact[2:] if compact.startswith("00") else cleaned,)

    reason = "not a valid number"
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, default_region)
        except phonenumbers.NumberParseException as error:
            reason = _PARSE_REASONS.get(error.error_type, "")
            continue
        if _is_valid(number, default_region):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        reason = _POSSIBLE_REASONS.get(phonenumbers.is_possible_number_with_reason(number), "not a valid number")
    if not reason:
        raise ValueError(f"invalid phone number {shown}")
    if not candidates[-1].startswith("+"):
        reason += f" for region {default_region}" if default_region else "; start it with +country code"
    raise ValueError(f"invalid phone number {shown}: {reason}")


def _is_valid(number: phonenumbers.PhoneNumber, region: str | None) -> bool:
    """phonenumbers.is_valid_number, sped up: most numbers belong to the default region, so check it first
    instead of searching every region of the country code (25 share +1)."""
    return bool(region and phonenumbers.is_valid_number_for_region(number, region)) or phonenumbers.is_valid_number(
        number
    )


def rejected_rows_csv(rejected: list[RejectedRow], columns: list[str]) -> str:
    """CSV text of rejected rows ("line,reason,<columns>") for the user to fix and upload again.

    Cells that a spreadsheet would run as a formula are prefixed with ' so opening the file is safe.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_spreadsheet_safe(["line", "reason", *columns]))
    for row in rejected:
        writer.writerow([row.line, *_spreadsheet_safe([row.reason, *(row.raw.get(c, "") for c in columns)])])
    return out.getvalue()


def _spreadsheet_safe(cells: list[str]) -> list[str]:
    return ["'" + cell if cell.startswith(FORMULA_PREFIXES) else cell for cell in cells]


def _check_region(default_region: str | None) -> str | None:
    if not default_region:
        return None
    region = default_region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise CsvImportError(f"unknown default region {default_region!r}: use a two-letter country code such as US")
    return region


def _detect_encoding(data: bytes) -> str:
    """Name the encoding that reads `data`: UTF-16 by its BOM, else UTF-8, cp1252 or latin-1."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            has_nul = "\x00" in data.decode("utf-16")
        except UnicodeDecodeError:
            raise CsvImportError("the file starts like UTF-16 text but is not: save it as CSV UTF-8") from None
        if has_nul:
            raise CsvImportError(_BINARY_MESSAGE)
        return "utf-16"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise CsvImportError(
            "this is a spreadsheet workbook (.xlsx, .xls or .ods), not CSV: "
            "save it as CSV (File > Save As > CSV) and upload that"
        )
    if b"\x00" in data:
        raise CsvImportError(_BINARY_MESSAGE)
    encoding = next(encoding for encoding in ENCODINGS if _decodes(data, encoding))
    if encoding == "utf-8-sig":
        return "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    return encoding


def _decodes(data: bytes, encoding: str) -> bool:
    """Check `data` decodes, chunk by chunk so no second copy of the whole file is made."""
    decoder = codecs.getincrementaldecoder(encoding)()
    chunk = 1 << 16
    try:
        for start in range(0, len(data), chunk):
            decoder.decode(data[start : start + chunk])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _text_stream(data: bytes, codec: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding=codec, newline="")


def _refuse_control_characters(sample: str) -> None:
    if len(_CONTROL_CHARACTER.findall(sample)) > len(sample) / 50:
        raise CsvImportError(_BINARY_MESSAGE)


def _sniff_delimiter(sample: str, truncated: bool) -> str:
    """Pick the delimiter that splits the header into most columns with the data rows agreeing.

    The header decides: a decimal comma or a comma inside a name then cannot outvote the semicolons.
    """

    def score(delimiter: str) -> tuple[float, int]:
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, skipinitialspace=True)
        try:
            rows = [row for row in itertools.islice(reader, _SNIFF_ROWS * 2) if not _is_blank(row)]
        except csv.Error:
            return (0.0, 0)
        if truncated and len(rows) > 1:
            rows.pop()  # the sample may have cut it short
        if not rows or len(rows[0]) < 2:
            return (0.0, 0)
        width, data_rows = len(rows[0]), rows[1:_SNIFF_ROWS]
        agreeing = sum(1 for row in data_rows if len(row) == width) / len(data_rows) if data_rows else 1.0
        return (agreeing, width)

    return max(DELIMITERS, key=score)


def _is_blank(row: list[str]) -> bool:
    """A row with nothing but spaces and delimiters, whichever delimiter the file turns out to use."""
    return not any(cell.strip(_BLANK_CHARACTERS) for cell in row)


def _records(reader):
    """Yield (physical line, stripped cells) of each non-blank record; raise CsvImportError on broken quoting."""
    start = record_start = 1
    try:
        for row in reader:
            if row == [_END_SENTINEL]:
                return
            record_start, start = start, reader.line_num + 1
            if any(row) and not _is_blank(row):
                yield record_start, [cell.strip() for cell in row]
    except csv.Error as error:
        raise CsvImportError(f'line {start}: {error}; check that every opening quote (") is closed') from None
    raise CsvImportError(
        f"line {record_start}: a quoted field starting here is never closed; "
        'fix or remove the unmatched quote (") and upload again'
    )


def _column_names(header: list[str]) -> list[str]:
    """Header names as written; an empty name becomes column_<n>, a repeated one gets _2, _3...

    Linear in the number of columns: each name remembers the next suffix to try, so a header of the same
    name repeated thousands of times costs no more than thousands of different names.
    """
    columns: list[str] = []
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    for position, cell in enumerate(header, start=1):
        base = cell.strip("\ufeff \t") or f"column_{position}"
        name, suffix = base, next_suffix.get(base, 2)
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        next_suffix[base] = suffix
        taken.add(name)
        columns.append(name)
    return columns


def _phone_column_index(columns: list[str], chosen: str | None, region: str | None) -> int:
    listed = ", ".join(repr(column) for column in columns[:_LISTED_COLUMNS_MAX])
    if len(columns) > _LISTED_COLUMNS_MAX:
        listed += f" and {len(columns) - _LISTED_COLUMNS_MAX} more"
    if chosen is not None:
        if chosen.strip() in columns:
            return columns.index(chosen.strip())
        folded = [_fold(column) for column in columns]
        if folded.count(_fold(chosen)) == 1:
            return folded.index(_fold(chosen))
        raise CsvImportError(f"there is no column {chosen!r}; the columns are {listed}", columns)

    found = _best_match(columns, PHONE_COLUMN_NAMES, PHONE_COLUMN_WORDS)
    if found is not None:
        return found
    if any(_looks_like_phone(column, region) for column in columns):
        raise CsvImportError(
            f"the first line holds data ({listed}), not column names: add a header line first, such as phone,name"
        )
    raise CsvImportError(
        f"no phone column found among the columns {listed}: "
        "name the column phone, or choose which column holds the phone numbers",
        columns,
    )


def _name_column_index(columns: list[str], phone_index: int) -> int | None:
    if "name" in columns:
        return None
    found = _best_match(columns, NAME_COLUMN_NAMES, ())
    return None if found == phone_index else found


def _best_match(columns: list[str], names: tuple[str, ...], words: tuple[str, ...]) -> int | None:
    """Index of the column whose name ranks first in `names`, else first containing one of `words`."""
    folded = [_fold(column) for column in columns]
    for name in names:
        if name in folded:
            return folded.index(name)
    for word in words:
        for index, column in enumerate(folded):
            if word in column:
                return index
    return None


def _fold(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(char for char in decomposed if char.isalnum()).casefold()


def _looks_like_phone(text: str, region: str | None) -> bool:
    try:
        normalise_phone(text, region)
    except ValueError:
        return False
    return True


def _exact_scientific_digits(lead: str, fraction: str | None, exponent: str) -> str | None:
    """Digits of 5.541991234567E+12, or None when Excel rounded them away (fewer digits than the exponent)."""
    fraction = fraction or ""
    if len(fraction) != int(exponent):
        return None
    return lead + fraction


def _shown(text: str) -> str:
    if len(text) > _SHOWN_TEXT_MAX:
        text = text[: _SHOWN_TEXT_MAX - 3] + "..."
    return repr(text)
