"""Every SQL example of docs/tables.md runs in DuckDB against a real warehouse
(the demo's, or FOOTFALL_WAREHOUSE) and returns rows, except the two written
for a site and a route the demo does not have (`example.org`, `/pricing`)."""

import os
import re

import duckdb
import pytest

from footfall_support import ROOT
from test_warehouse import WH

DOC = open(os.path.join(ROOT, "docs", "tables.md"), encoding="utf-8").read()
QUERIES = re.findall(r"```sql\n(.*?)```", DOC, re.S)
HYPOTHETICAL = ("'example.org'", "'/pricing'")


def test_the_doc_has_its_examples():
    assert len(QUERIES) >= 15


@pytest.mark.parametrize("query", QUERIES, ids=[q.strip().splitlines()[0][:50] for q in QUERIES])
def test_every_example_query_runs(query):
    rows = duckdb.connect().execute(query.replace("'wh/", f"'{WH}/")).fetchall()
    if not any(h in query for h in HYPOTHETICAL):
        assert rows, "the example returns nothing on the demo warehouse"
