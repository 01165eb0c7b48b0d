"""Query a statepipe site's ClickHouse HTTP interface with clickhouse-connect, as an analyst would.

    python3 clickhouse_connect_check.py URL PASSWORD

Prints one JSON object: the client's version, the compliance per update of the report view
v_update_compliance_status read into rows (and into a pandas DataFrame when pandas is
installed), how long that query took through the client, and the error a refused write
surfaced as. The Go test (cmd/statepipe/chhttp_e2e_test.go) compares the numbers with the
site's own compliance report. Exits 1 when something that must work did not.
"""

import json
import sys
import time
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError

QUERY = """
SELECT update_id,
       countIf(state = 3) AS installed, countIf(state = 2) AS required,
       countIf(state = 1) AS not_required, countIf(state = 0) AS unknown
FROM v_update_compliance_status
GROUP BY update_id ORDER BY update_id
"""


def main() -> int:
    url, password = sys.argv[1], sys.argv[2]
    u = urlparse(url)
    client = clickhouse_connect.get_client(host=u.hostname, port=u.port, username="default", password=password)
    out = {"client": "clickhouse-connect", "version": clickhouse_connect.__version__, "server_version": client.server_version}

    start = time.perf_counter()
    result = client.query(QUERY)
    out["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
    out["columns"] = list(result.column_names)
    out["rows"] = [[row[0], *(int(v) for v in row[1:])] for row in result.result_rows]

    try:
        import pandas  # noqa: F401 (optional)
    except ImportError:
        out["pandas"] = None
    else:
        df = client.query_df(QUERY)
        out["pandas"] = [[r["update_id"], *(int(r[c]) for c in out["columns"][1:])] for _, r in df.iterrows()]

    try:
        client.command("INSERT INTO ref_updates (id, title) VALUES ('X', 'written')")
        out["write_refused"] = None
    except DatabaseError as e:
        out["write_refused"] = str(e)
    try:
        client.command("DROP TABLE ref_updates")
        out["drop_refused"] = None
    except DatabaseError as e:
        out["drop_refused"] = str(e)

    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
