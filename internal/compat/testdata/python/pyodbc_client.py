"""psqlODBC through pgveil, driven by pyodbc: the ODBC driver Excel, Power
BI and Tableau use. Its own start-up statements, statements wrapped in
BEGIN and savepoints (autocommit off, as ODBC applications run), bound
parameters, catalog functions (SQLTables, SQLColumns, SQLPrimaryKeys,
SQLStatistics, SQLGetTypeInfo), a refused statement, an error in a
transaction. Prints one JSON object a line.

Usage: pyodbc_client.py HOST PORT DATABASE USER PASSWORD OPTIONS [ROLE]
(Debian's /usr/bin/python3, python3-pyodbc, odbc-postgresql). OPTIONS are
psqlODBC's connection-string keywords, e.g.
"UseDeclareFetch=1;Fetch=100;UseServerSidePrepare=1;Protocol=7.4-2". With
ROLE, the session first runs SET ROLE ROLE: a BI service acting for a
user.
"""
import datetime
import decimal
import glob
import json
import sys

import pyodbc

# Debian's odbc-postgresql registers this driver in odbcinst.ini; its
# library is the fallback when the registration is missing.
DRIVER = "PostgreSQL Unicode"
LIBRARY = "/usr/lib/*/odbc/psqlodbcw.so"


def out(check, **kw):
    print(json.dumps(dict(check=check, **kw), default=str), flush=True)


def refusal(err):
    # pyodbc: (SQLSTATE, message); psqlODBC passes the server's SQLSTATE.
    return dict(sqlstate=err.args[0], message=err.args[1] if len(err.args) > 1 else "")


def connect(host, port, db, user, password, options):
    driver = DRIVER if DRIVER in pyodbc.drivers() else sorted(glob.glob(LIBRARY))[0]
    cs = ("Driver={%s};Servername=%s;Port=%s;Database=%s;UID=%s;PWD=%s;SSLmode=disable;"
          "pqopt={application_name=pgveil-compat};%s" % (driver, host, port, db, user, password, options))
    return pyodbc.connect(cs, autocommit=False)


def main(host, port, db, user, password, options, role):
    conn = connect(host, port, db, user, password, options)
    out("version", driver=conn.getinfo(pyodbc.SQL_DRIVER_VER), pyodbc=pyodbc.version, options=options)
    cur = conn.cursor()
    if role:
        cur.execute("SET ROLE " + role)
        conn.commit()

    cur.execute("SELECT DISTINCT country FROM responses ORDER BY 1")
    out("countries", values=[r[0] for r in cur.fetchall()])

    cur.execute("SELECT count(*) FILTER (WHERE contact IS NOT NULL), count(*) FILTER (WHERE email IS NOT NULL),"
                " count(*) FILTER (WHERE score IS NOT NULL) FROM responses")
    c, e, s = cur.fetchone()
    out("masked", contact=c, email=e, score=s)

    # ODBC parameter markers: bound, then sent by psqlODBC as $n of a
    # server-side prepared statement (UseServerSidePrepare=1) or inlined.
    cur.execute("SELECT count(*) FROM responses WHERE country = ? AND nps >= ?", "USA", 0)
    out("param", count=cur.fetchone()[0])

    total = 0
    for nps in range(0, 11):
        cur.execute("SELECT count(*) FROM responses WHERE nps = ?", nps)
        total += cur.fetchone()[0]
    out("prepared", total=total)

    since = datetime.datetime(2025, 7, 1, 0, 0, 0)
    cur.execute("SELECT CAST(? AS text), CAST(? AS int), CAST(? AS numeric), CAST(? AS timestamp), CAST(? AS text)",
                "Fran\u00e7ais", 42, decimal.Decimal("12.50"), since, None)
    echo = list(cur.fetchone())
    sent = ["Fran\u00e7ais", 42, decimal.Decimal("12.50"), since, None]
    cur.execute("SELECT count(*) FROM responses WHERE country = ANY(CAST(? AS text[])) AND nps >= ?"
                " AND submitted_at >= CAST(? AS timestamptz) AND (CAST(? AS text) IS NULL OR branch = ?)",
                "{France,USA}", 5, "2025-07-01 00:00:00+00", None, None)
    count = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM responses WHERE score >= ? OR email LIKE ?", decimal.Decimal("0"), "%@%")
    out("typed_params", echoed=echo == sent, got=echo, count=count, masked_predicate=cur.fetchone()[0])

    cur.execute("SELECT * FROM responses WHERE 1 = 0")
    out("columns", names=[d[0] for d in cur.description], types=[d[1].__name__ for d in cur.description])
    conn.commit()

    # Fetched in batches: with UseDeclareFetch=1 psqlODBC reads through
    # DECLARE … CURSOR and FETCH n.
    cur.execute("SELECT id, country, email FROM responses WHERE nps >= ? ORDER BY id", 0)
    rows, countries, emails, batches = 0, set(), 0, 0
    while True:
        batch = cur.fetchmany(100)
        if not batch:
            break
        batches += 1
        for _id, country, email in batch:
            rows += 1
            countries.add(country)
            emails += email is not None
    conn.commit()
    out("named_cursor", rows=rows, countries=sorted(countries), emails=emails, batches=batches)

    # Catalog functions: psqlODBC's own queries on pg_catalog.
    tables = sorted(r.table_name for r in cur.tables(schema="public", tableType="TABLE"))
    out("tables", names=tables)
    cols = [[r.column_name, r.type_name, r.data_type, r.nullable] for r in cur.columns(table="responses", schema="public")]
    out("meta_columns", columns=cols)
    out("primary_key", columns=[r.column_name for r in cur.primaryKeys("responses", schema="public")])
    stats = sorted({(r.index_name, r.column_name) for r in cur.statistics("responses", schema="public") if r.index_name})
    out("statistics", indexes=[list(s) for s in stats])
    out("type_info", count=len(cur.getTypeInfo().fetchall()) > 0)
    out("foreign_keys", keys=sorted([r.fktable_name, r.fkcolumn_name, r.pktable_name, r.pkcolumn_name]
                                    for r in cur.foreignKeys(foreignTable="responses", foreignSchema="public")))
    conn.commit()

    try:
        cur.execute("SELECT login FROM employees")
        cur.fetchall()
        out("refused", sqlstate=None)
    except pyodbc.Error as err:
        out("refused", **refusal(err))
    conn.rollback()
    cur.execute("SELECT 1")
    out("usable_after_error", value=cur.fetchone()[0])
    conn.commit()

    # An error inside a transaction: what follows in it, then rollback.
    cur.execute("SELECT count(*) FROM responses")
    first = cur.fetchone()[0]
    errors = []
    for bad in ("SELECT 1 / 0", "SELECT login FROM employees"):
        try:
            cur.execute(bad)
            cur.fetchall()
        except pyodbc.Error as err:
            errors.append(err.args[0])
    try:
        cur.execute("SELECT count(*) FROM responses")
        after = cur.fetchone()[0]
    except pyodbc.Error as err:
        after = err.args[0]
    conn.rollback()
    cur.execute("SELECT 1")
    out("tx_recovery", first=first, errors=errors, after=after, value=cur.fetchone()[0])
    conn.commit()

    # A write: refused, the connection usable after (upstream, the row
    # breaks a NOT NULL constraint: nothing is written).
    try:
        cur.execute("INSERT INTO responses (id, country) VALUES (?, ?)", 99999, "France")
        out("write_refused", sqlstate=None)
    except pyodbc.Error as err:
        out("write_refused", **refusal(err))
    conn.rollback()

    # A SET in a transaction outlives its commit.
    cur.execute("SET TimeZone = 'Asia/Tokyo'")
    conn.commit()
    zones = set()
    for _ in range(3):
        cur.execute("SHOW TimeZone")
        zones.add(cur.fetchone()[0])
        conn.commit()
    out("tx_setting", timezones=sorted(zones))
    conn.close()

    # Autocommit on, ODBC's default (Excel, Power BI): each statement its
    # own transaction, psqlODBC's prepared statements dropped with
    # DEALLOCATE as the statement handle moves to another text.
    conn = connect(host, port, db, user, password, options)
    conn.autocommit = True
    cur = conn.cursor()
    if role:
        cur.execute("SET ROLE " + role)
    totals = []
    for _ in range(3):
        total = 0
        for nps in range(0, 11):
            cur.execute("SELECT count(*) FROM responses WHERE nps = ?", nps)
            total += cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM responses WHERE nps = ? AND country IS NOT NULL", nps)
            total -= cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM responses WHERE nps = ?", nps)
            total += cur.fetchone()[0]
        totals.append(total)
    out("autocommit", totals=sorted(set(totals)))
    conn.close()


if __name__ == "__main__":
    main(*sys.argv[1:7], sys.argv[7] if len(sys.argv) > 7 else "")
