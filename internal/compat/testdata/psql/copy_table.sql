-- \copy responses TO STDOUT: pgveil turns COPY responses TO STDOUT into
-- COPY (SELECT * FROM <the user's view of responses>) TO STDOUT: the same
-- columns, only the rows and values the user may see.
\copy responses TO STDOUT
