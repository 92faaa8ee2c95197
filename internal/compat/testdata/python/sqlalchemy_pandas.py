"""SQLAlchemy reflection and pandas.read_sql through pgveil, on psycopg2
(what Superset and most notebooks do). Prints one JSON object a line.

Usage: sqlalchemy_pandas.py URL   (postgresql+psycopg2://…; Debian's
/usr/bin/python3 with python3-sqlalchemy and python3-pandas)
"""
import json
import sys

import pandas
import sqlalchemy
from sqlalchemy import inspect, text


def out(check, **kw):
    print(json.dumps(dict(check=check, **kw), default=str), flush=True)


def main(url):
    engine = sqlalchemy.create_engine(url)
    out("version", sqlalchemy=sqlalchemy.__version__, pandas=pandas.__version__)
    insp = inspect(engine)
    out("table_names", names=sorted(insp.get_table_names(schema="public")))
    cols = insp.get_columns("responses", schema="public")
    out("reflected_columns", names=[c["name"] for c in cols], types=[str(c["type"]) for c in cols],
        nullable=[c["nullable"] for c in cols])
    out("primary_key", columns=insp.get_pk_constraint("responses", schema="public")["constrained_columns"])
    out("foreign_keys", referred=sorted(fk["referred_table"] for fk in insp.get_foreign_keys("responses", schema="public")))
    out("indexes", names=sorted(i["name"] for i in insp.get_indexes("responses", schema="public")))
    # The rest of what Superset's and Metabase-like syncs reflect, for
    # every table: the same as upstream, governed tables included.
    tables = sorted(insp.get_table_names(schema="public"))
    out("reflection", has_table=[insp.has_table(t, schema="public") for t in tables],
        views=sorted(insp.get_view_names(schema="public")),
        unique=[sorted(u["name"] for u in insp.get_unique_constraints(t, schema="public")) for t in tables],
        checks=[sorted((c["name"], c["sqltext"]) for c in insp.get_check_constraints(t, schema="public")) for t in tables],
        comment=[insp.get_table_comment(t, schema="public")["text"] for t in tables],
        defaults=[[c.get("default") for c in insp.get_columns(t, schema="public")] for t in tables])

    # A reflected Table, then a Core query built from it.
    md = sqlalchemy.MetaData()
    responses = sqlalchemy.Table("responses", md, autoload_with=engine, schema="public")
    with engine.connect() as conn:
        q = sqlalchemy.select(responses.c.country, sqlalchemy.func.count()).group_by(responses.c.country)
        out("core_query", countries=sorted(r[0] for r in conn.execute(q)))
        n = conn.execute(text("SELECT count(*) FROM responses WHERE country = :c"), {"c": "USA"}).scalar()
        out("param", count=n)

    df = pandas.read_sql("SELECT id, country, contact, email, score, submitted_at FROM responses ORDER BY id", engine)
    out("read_sql", rows=len(df), countries=sorted(df["country"].unique().tolist()),
        contact=int(df["contact"].notna().sum()), email=int(df["email"].notna().sum()),
        score=int(df["score"].notna().sum()), dtypes={k: str(v) for k, v in df.dtypes.items()})
    df = pandas.read_sql_table("responses", engine, schema="public", columns=["id", "country"])
    out("read_sql_table", rows=len(df), countries=sorted(df["country"].unique().tolist()))


if __name__ == "__main__":
    main(sys.argv[1])
