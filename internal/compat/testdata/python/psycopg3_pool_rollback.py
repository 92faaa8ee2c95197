"""psycopg 3 behind a transaction pool: once it prepared a statement
(prepare=True, or a query run prepare_threshold times), rollback() sends
ROLLBACK, then DEALLOCATE ALL (Parse, Bind, Execute, Sync). Prints one JSON
object a line.

Usage: psycopg3_pool_rollback.py DSN   (Debian's /usr/bin/python3, python3-psycopg)
"""
import json
import sys

import psycopg

Q = "SELECT count(*) FROM responses WHERE nps >= %s"


def out(check, **kw):
    print(json.dumps(dict(check=check, **kw), default=str), flush=True)


def attempt(check, f):
    try:
        out(check, value=f(), sqlstate=None)
    except psycopg.Error as err:
        out(check, value=None, sqlstate=err.sqlstate, message=str(err))


def main(dsn):
    with psycopg.connect(dsn) as conn:
        cur = conn.cursor()
        attempt("prepared", lambda: cur.execute(Q, (0,), prepare=True).fetchone()[0])
        attempt("rollback", conn.rollback)
        attempt("prepared_again", lambda: cur.execute(Q, (0,), prepare=True).fetchone()[0])
        attempt("commit", conn.commit)
        # prepare_threshold (5): prepared at its sixth run.
        attempt("threshold", lambda: [cur.execute(Q, (n,)).fetchone()[0] for n in range(7)][-1])
        attempt("rollback_after_threshold", conn.rollback)
        attempt("threshold_again", lambda: [cur.execute(Q, (n,)).fetchone()[0] for n in range(7)][-1])
        attempt("rollback_again", conn.rollback)
        attempt("usable_after", lambda: conn.execute("SELECT 1").fetchone()[0])
        attempt("commit_before_pipeline", conn.commit)
        # In pipeline mode rollback() sends ROLLBACK and DEALLOCATE ALL in
        # one batch: Parse, Bind, Execute of each, one Sync.
        with conn.pipeline():
            attempt("pipeline_prepared", lambda: cur.execute(Q, (0,), prepare=True).fetchone()[0])
            attempt("pipeline_rollback", conn.rollback)
            attempt("pipeline_prepared_again", lambda: cur.execute(Q, (0,), prepare=True).fetchone()[0])
            attempt("pipeline_threshold", lambda: [cur.execute(Q, (n,)).fetchone()[0] for n in range(7)][-1])
            attempt("pipeline_rollback_again", conn.rollback)
            attempt("pipeline_usable_after", lambda: conn.execute("SELECT 1").fetchone()[0])
            # After an error the block is aborted when rollback() sends
            # its batch.
            attempt("pipeline_prepared_before_error", lambda: cur.execute(Q, (0,), prepare=True).fetchone()[0])
            attempt("pipeline_error", lambda: conn.execute("SELECT 1/0").fetchone()[0])
            attempt("pipeline_rollback_after_error", conn.rollback)
            attempt("pipeline_usable_after_error", lambda: cur.execute(Q, (0,), prepare=True).fetchone()[0])
        attempt("usable_after_pipeline", lambda: conn.execute("SELECT 1").fetchone()[0])


if __name__ == "__main__":
    main(sys.argv[1])
