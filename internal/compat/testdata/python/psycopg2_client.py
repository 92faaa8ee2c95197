"""psycopg2 through pgveil: simple queries, parameters, a server-side
(named) cursor, a refused statement. Prints one JSON object a line.

Usage: psycopg2_client.py DSN   (Debian's /usr/bin/python3, python3-psycopg2)
"""
import json
import sys

import psycopg2


def out(check, **kw):
    print(json.dumps(dict(check=check, **kw), default=str), flush=True)


def main(dsn):
    conn = psycopg2.connect(dsn)
    out("version", driver=psycopg2.__version__)
    cur = conn.cursor()

    cur.execute("SELECT DISTINCT country FROM responses ORDER BY 1")
    out("countries", values=[r[0] for r in cur.fetchall()])

    cur.execute("SELECT count(*) FILTER (WHERE contact IS NOT NULL), count(*) FILTER (WHERE email IS NOT NULL),"
                " count(*) FILTER (WHERE score IS NOT NULL) FROM responses")
    c, e, s = cur.fetchone()
    out("masked", contact=c, email=e, score=s)

    # psycopg2 interpolates parameters client-side: the statement pgveil
    # sees carries the literal.
    cur.execute("SELECT count(*) FROM responses WHERE country = %s AND nps >= %s", ("USA", 0))
    out("param", count=cur.fetchone()[0])

    cur.execute("SELECT * FROM responses LIMIT 0")
    out("columns", names=[d.name for d in cur.description], type_oids=[d.type_code for d in cur.description])

    conn.commit()
    # A named cursor is DECLARE … CURSOR WITHOUT HOLD FOR … in a
    # transaction, read with FETCH FORWARD itersize.
    named = conn.cursor(name="compat_named")
    named.itersize = 100
    named.execute("SELECT id, country, email FROM responses ORDER BY id")
    rows, countries, emails = 0, set(), 0
    for _id, country, email in named:
        rows += 1
        countries.add(country)
        emails += email is not None
    named.close()
    conn.commit()
    out("named_cursor", rows=rows, countries=sorted(countries), emails=emails)

    try:
        cur.execute("SELECT login FROM employees")
        out("refused", sqlstate=None)
    except psycopg2.Error as err:
        out("refused", sqlstate=err.pgcode, message=err.pgerror)
    conn.rollback()
    cur.execute("SELECT 1")
    out("usable_after_error", value=cur.fetchone()[0])
    conn.commit()

    # With autocommit off, psycopg2's default, a SET runs in the
    # transaction psycopg2 opens, and outlives its commit.
    cur.execute("SET TimeZone = 'Asia/Tokyo'")
    conn.commit()
    zones = set()
    for _ in range(3):
        cur.execute("SHOW TimeZone")
        zones.add(cur.fetchone()[0])
        conn.commit()
    out("tx_setting", timezones=sorted(zones))
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1])
