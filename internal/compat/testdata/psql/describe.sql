-- psql's describe commands through pgveil: each becomes catalog queries
-- (psql -E shows them). The output must be the same as without pgveil:
-- masking changes values, never the table's shape.
\d
\dt
\d responses
\d+ responses
\dn
\df
\dT
\l
\d+ employees
\d+ responses_id_seq
\dv
\dm
\ds
\di
\dn+
\dT+
\dD
\du
\dx
\dp responses
\dd
\db
