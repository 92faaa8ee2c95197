"""psycopg 3 through pgveil: server-side parameters (extended protocol),
prepared statements, a server-side cursor, a refused statement. Prints one
JSON object a line.

Usage: psycopg3_client.py DSN   (Debian's /usr/bin/python3, python3-psycopg)
"""
import json
import sys

import psycopg


def out(check, **kw):
    print(json.dumps(dict(check=check, **kw), default=str), flush=True)


def main(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        out("version", driver=psycopg.__version__)
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT country FROM responses ORDER BY 1")
            out("countries", values=[r[0] for r in cur.fetchall()])

            cur.execute("SELECT count(*) FILTER (WHERE contact IS NOT NULL), count(*) FILTER (WHERE email IS NOT NULL),"
                        " count(*) FILTER (WHERE score IS NOT NULL) FROM responses")
            c, e, s = cur.fetchone()
            out("masked", contact=c, email=e, score=s)

            # Server-side binding: Parse/Bind with $1, $2.
            cur.execute("SELECT count(*) FROM responses WHERE country = %s AND nps >= %s", ("USA", 0))
            out("param", count=cur.fetchone()[0])

            # prepare=True: a named server-side prepared statement, reused.
            counts = []
            for nps in range(0, 11):
                cur.execute("SELECT count(*) FROM responses WHERE nps = %s", (nps,), prepare=True)
                counts.append(cur.fetchone()[0])
            out("prepared", total=sum(counts))

            cur.execute("SELECT * FROM responses LIMIT 0")
            out("columns", names=[d.name for d in cur.description], type_oids=[d.type_code for d in cur.description])

        with conn.transaction():
            # A server-side cursor: DECLARE … CURSOR FOR … and FETCH.
            with conn.cursor(name="compat_server_side") as named:
                named.itersize = 100
                named.execute("SELECT id, country, email FROM responses WHERE nps >= %s ORDER BY id", (0,))
                rows, countries, emails = 0, set(), 0
                for _id, country, email in named:
                    rows += 1
                    countries.add(country)
                    emails += email is not None
        out("named_cursor", rows=rows, countries=sorted(countries), emails=emails)

        try:
            conn.execute("SELECT login FROM employees")
            out("refused", sqlstate=None)
        except psycopg.Error as err:
            out("refused", sqlstate=err.sqlstate, message=str(err))
        out("usable_after_error", value=conn.execute("SELECT 1").fetchone()[0])


if __name__ == "__main__":
    main(sys.argv[1])
