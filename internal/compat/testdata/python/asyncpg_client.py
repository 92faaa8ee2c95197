"""asyncpg through pgveil: the extended protocol for every statement with
arguments (named statements from asyncpg's cache, Describe, binary
formats), its type introspection, portals read in batches, executemany's
pipeline, COPY out and in, a refused statement, an error in a
transaction, and a pool's reset on release. Prints one JSON object a
line.

Usage: asyncpg_client.py URL [ROLE]   (Debian's /usr/bin/python3,
python3-asyncpg). With ROLE, every connection first runs SET ROLE ROLE:
a BI service acting for a user.
"""
import asyncio
import datetime
import decimal
import io
import json
import sys

import asyncpg


def out(check, **kw):
    print(json.dumps(dict(check=check, **kw), default=str), flush=True)


def refusal(err):
    return dict(sqlstate=err.sqlstate,
                message=" ".join(p for p in (err.args[0] if err.args else "", err.detail, err.hint) if p))


async def checks(conn):
    out("version", driver=asyncpg.__version__)

    # Every fetch is Parse (a named statement of asyncpg's cache),
    # Describe, Bind (binary results), Execute, Sync.
    rows = await conn.fetch("SELECT DISTINCT country FROM responses ORDER BY 1")
    out("countries", values=[r[0] for r in rows])

    c, e, s = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE contact IS NOT NULL), count(*) FILTER (WHERE email IS NOT NULL),"
        " count(*) FILTER (WHERE score IS NOT NULL) FROM responses")
    out("masked", contact=c, email=e, score=s)

    out("param", count=await conn.fetchval(
        "SELECT count(*) FROM responses WHERE country = $1 AND nps >= $2", "USA", 0))

    # The same text again and again: asyncpg's statement cache binds the
    # named statement it prepared the first time.
    total = 0
    for nps in range(0, 11):
        total += await conn.fetchval("SELECT count(*) FROM responses WHERE nps = $1", nps)
    out("prepared", total=total)

    # Parameters of several types, sent in binary, and what they select.
    since = datetime.datetime(2025, 7, 1, tzinfo=datetime.timezone.utc)
    echo = await conn.fetchrow("SELECT $1::text, $2::int, $3::numeric, $4::timestamptz, $5::text, $6::text[], $7::int[]",
                               "Fran\u00e7ais", 42, decimal.Decimal("12.50"), since, None, ["France", "USA"], [1, None, 3])
    sent = ("Fran\u00e7ais", 42, decimal.Decimal("12.50"), since, None, ["France", "USA"], [1, None, 3])
    out("typed_params", echoed=list(echo) == list(sent), got=list(echo),
        count=await conn.fetchval(
            "SELECT count(*) FROM responses WHERE country = ANY($1::text[]) AND nps >= $2 AND submitted_at >= $3"
            " AND ($4::text IS NULL OR branch = $4) AND ($5::numeric IS NULL OR score >= $5)",
            ["France", "USA"], 5, since, None, None),
        masked_predicate=await conn.fetchval("SELECT count(*) FROM responses WHERE score >= $1 OR email LIKE $2",
                                             decimal.Decimal("0"), "%@%"))

    # Describe of a statement: the columns and their types.
    stmt = await conn.prepare("SELECT * FROM responses LIMIT 0")
    out("columns", names=[a.name for a in stmt.get_attributes()], type_oids=[a.type.oid for a in stmt.get_attributes()])
    stmt = await conn.prepare("SELECT id FROM responses WHERE country = $1 AND submitted_at < $2 AND nps = ANY($3)")
    out("parameters", types=[t.name for t in stmt.get_parameters()])

    # A result of types asyncpg has no codec for (information_schema's
    # domains) sends its introspection query, a recursive CTE on pg_type.
    names = await conn.fetch("SELECT table_name, column_name, data_type FROM information_schema.columns"
                             " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position", "responses")
    out("introspection", columns=[[r[0], r[1], r[2]] for r in names])

    # A codec of its own for a type: asyncpg looks the type up by name.
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    out("type_codec", value=await conn.fetchval("SELECT json_build_object('countries', count(DISTINCT country)) FROM responses"))

    # A cursor: a named portal, read 100 rows at a time, in a transaction.
    async with conn.transaction():
        rows, countries, emails, batches = 0, set(), 0, 0
        cur = await conn.cursor("SELECT id, country, email FROM responses WHERE nps >= $1 ORDER BY id", 0)
        while True:
            batch = await cur.fetch(100)
            if not batch:
                break
            batches += 1
            for _id, country, email in batch:
                rows += 1
                countries.add(country)
                emails += email is not None
        # And iterated with prefetch.
        iterated = 0
        async for _ in conn.cursor("SELECT id FROM responses ORDER BY id", prefetch=50):
            iterated += 1
    out("named_cursor", rows=rows, countries=sorted(countries), emails=emails, batches=batches, iterated=iterated)

    # executemany: Bind/Execute for each set of arguments, one Sync.
    await conn.executemany("SELECT count(*) FROM responses WHERE country = $1 AND nps = $2",
                           [("France", n) for n in range(11)])
    out("executemany", ok=True)

    # COPY (query) TO STDOUT, with the query's arguments inlined by
    # asyncpg (it prepares the query, then SELECT quote_literal($1::…)).
    buf = io.BytesIO()
    tag = await conn.copy_from_query("SELECT id, country, email, score FROM responses WHERE nps >= $1 ORDER BY id",
                                     0, output=buf, format="csv")
    lines = buf.getvalue().decode().splitlines()
    out("copy_out", tag=tag, rows=len(lines), countries=sorted({l.split(",")[1] for l in lines}),
        emails=sum(1 for l in lines if l.split(",")[2] != ""))

    # COPY FROM STDIN (binary) into a governed table: refused (upstream,
    # the row breaks a NOT NULL constraint: nothing is written).
    try:
        await conn.copy_records_to_table("responses", records=[(99999, "France")], columns=["id", "country"])
        out("copy_in_refused", sqlstate=None)
    except asyncpg.PostgresError as err:
        out("copy_in_refused", **refusal(err))
    out("copy_in_usable_after", value=await conn.fetchval("SELECT 1"))

    try:
        await conn.fetch("SELECT login FROM employees")
        out("refused", sqlstate=None)
    except asyncpg.PostgresError as err:
        out("refused", **refusal(err))
    out("usable_after_error", value=await conn.fetchval("SELECT 1"))

    # An error inside a transaction, then a savepoint's recovery and the
    # transaction's.
    savepoint = refused = aborted = None
    tr = conn.transaction()
    await tr.start()
    try:
        async with conn.transaction():  # a savepoint
            await conn.fetchval("SELECT 1 / $1", 0)
    except asyncpg.PostgresError as err:
        savepoint = err.sqlstate
    in_tx = await conn.fetchval("SELECT count(*) FROM responses WHERE nps >= $1", 0)
    try:
        await conn.fetch("SELECT login FROM employees")
    except asyncpg.PostgresError as err:
        refused = err.sqlstate
    try:
        await conn.fetchval("SELECT 1")
    except asyncpg.PostgresError as err:
        aborted = err.sqlstate
    await tr.rollback()
    out("tx_recovery", savepoint_error=savepoint, count_after_savepoint=in_tx, refused=refused, aborted=aborted,
        value=await conn.fetchval("SELECT 1"))

    # Connection.reset(), what a pool runs on release: SELECT
    # pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL.
    await conn.execute("SET TimeZone = 'Asia/Tokyo'")
    await conn.reset()
    out("reset", timezone=await conn.fetchval("SHOW TimeZone"), value=await conn.fetchval("SELECT 1"))


async def pool_checks(url, setup):
    # A pool of two connections, each reset on release, shared by tasks.
    async with asyncpg.create_pool(url, min_size=2, max_size=2, setup=setup,
                                   server_settings={"application_name": "pgveil-compat"}) as pool:
        async def task(i):
            async with pool.acquire() as conn:
                if i % 3 == 0:
                    await conn.execute("SET TimeZone = 'Asia/Tokyo'")
                return await conn.fetchval("SELECT count(*) FROM responses WHERE nps >= $1", i % 2)
        counts = await asyncio.gather(*(task(i) for i in range(12)))
        async with pool.acquire() as conn:
            zone = await conn.fetchval("SHOW TimeZone")
    out("pool", counts=sorted(set(counts)), timezone=zone)


async def main(url, role):
    async def setup(conn):
        if role:
            await conn.execute("SET ROLE " + role)

    conn = await asyncpg.connect(url, server_settings={"application_name": "pgveil-compat"})
    try:
        await setup(conn)
        await checks(conn)
    finally:
        await conn.close()
    await pool_checks(url, setup)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
