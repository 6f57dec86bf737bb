"""A sub-table of a tabular benchmark, for checking that a sampler's gain is not one table's noise:

    python3 bench/tabular/subtable.py TABLE.json FIRST:END > SUB.json     (rows FIRST to END-1, 0-based)

The rows are the table's rows FIRST to END-1 in its order; the space and the objectives' targets stay the table's,
so a sub-table is the same benchmark over fewer architectures. The harnesses recompute the true front per table.
"""
import json
import sys

if len(sys.argv) != 3 or ":" not in sys.argv[2]:
    sys.exit(__doc__)
with open(sys.argv[1]) as f:
    table = json.load(f)
first, last = (int(x) if x else None for x in sys.argv[2].split(":"))
rows = table["rows"][first:last]
if not rows:
    sys.exit(f"rows {sys.argv[2]} of {sys.argv[1]} are empty: the table has {len(table['rows'])} rows")
table["rows"] = rows
table["note"] = f"rows {sys.argv[2]} of {sys.argv[1]} ({len(rows)} rows). " + table["note"]
json.dump(table, sys.stdout, indent=1)
print()
