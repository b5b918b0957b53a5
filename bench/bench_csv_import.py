"""Benchmark the CSV contact importer on a generated 100,000-row file (mixed valid, invalid, duplicate numbers).

Prints elapsed (and CPU) seconds and rows/s of a plain run, then the tracemalloc peak of a second run (tracing slows it
down, so it is not timed) and the process's peak RSS. Run: .venv/bin/python bench/bench_csv_import.py [ROWS]
"""

import csv
import io
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.contacts.csv_import import import_contacts_csv

US_AREA_CODES = ("212", "305", "312", "415", "503", "617", "646", "702", "713", "808")
NAMES = ("Ana", "Bruno", "Carla", "Júlia", "Zoë", 'Maria "Mari" Souza', "Lima, João", "Ørsted")
CITIES = ("Curitiba", "São Paulo", "Oakland", "New York", "Lisboa")
INVALID = ("12345", "n/a", "555-01", "+999 123 4567", "", "5.54199E+12", "not-a-number")


def generate_csv(rows: int, seed: int = 1) -> bytes:
    """A comma CSV with BOM: ~70% US numbers in mixed formats, ~15% Brazilian, ~7% invalid, ~8% duplicates."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone", "name", "email", "city", "order_id"])
    earlier: list[str] = []
    for index in range(rows):
        kind = rng.random()
        if kind < 0.70:
            area, exchange, line = rng.choice(US_AREA_CODES), rng.randint(200, 999), rng.randint(0, 9999)
            phone = rng.choice(
                (
                    f"({area}) {exchange}-{line:04d}",
                    f"+1 {area} {exchange} {line:04d}",
                    f"{area}.{exchange}.{line:04d}",
                    f"1{area}{exchange}{line:04d}",
                )
            )
        elif kind < 0.85:
            phone = f"+55 41 9{rng.randint(8000, 9999)}-{rng.randint(0, 9999):04d}"
        elif kind < 0.92:
            phone = rng.choice(INVALID)
        else:
            phone = rng.choice(earlier) if earlier else "(212) 555-0100"
        if kind < 0.85 and len(earlier) < 1000:
            earlier.append(phone)
        writer.writerow([phone, rng.choice(NAMES), f"user{index}@example.com", rng.choice(CITIES), f"A-{index}"])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = generate_csv(rows)
    print(f"file: {rows:,} rows, {len(data) / 1e6:.1f} MB")

    started, cpu_started = time.perf_counter(), time.process_time()
    result = import_contacts_csv(data, default_region="US")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"imported {len(result.contacts):,}, rejected {len(result.rejected):,} "
        f"(encoding {result.encoding}, delimiter {result.delimiter!r})"
    )
    print(f"elapsed {elapsed:.2f} s (CPU {cpu:.2f} s), {rows / elapsed:,.0f} rows/s")
    del result

    tracemalloc.start()
    result = import_contacts_csv(data, default_region="US")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"tracemalloc peak {peak / 1e6:.1f} MB (result kept: {len(result.contacts):,} contacts)")
    print(f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB (whole process)")


if __name__ == "__main__":
    main()
