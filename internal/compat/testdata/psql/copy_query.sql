-- \copy (SELECT …) TO STDOUT: COPY (query) TO STDOUT, run for the user's
-- scope, masked columns as \N.
\copy (SELECT id, country, contact, email, score FROM responses ORDER BY id) TO STDOUT
