// node-postgres (pg) and pg-cursor through pgveil: parameterised queries
// (extended protocol), a named prepared statement, a cursor, a refused
// statement. Prints one JSON object a line.
//
// Usage: node client.js   (connection from PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGDATABASE; run `npm ci` here first)
'use strict';

const { Client } = require('pg');
const Cursor = require('pg-cursor');

function out(check, fields) {
  console.log(JSON.stringify(Object.assign({ check }, fields)));
}

async function main() {
  const client = new Client();
  await client.connect();
  out('version', { driver: require('pg/package.json').version });

  let r = await client.query('SELECT DISTINCT country FROM responses ORDER BY 1');
  out('countries', { values: r.rows.map((x) => x.country) });

  r = await client.query(
    'SELECT count(*) FILTER (WHERE contact IS NOT NULL)::int AS contact, count(*) FILTER (WHERE email IS NOT NULL)::int AS email,' +
      ' count(*) FILTER (WHERE score IS NOT NULL)::int AS score FROM responses',
  );
  out('masked', r.rows[0]);

  r = await client.query('SELECT count(*)::int AS n FROM responses WHERE country = $1 AND nps >= $2', ['USA', 0]);
  out('param', { count: r.rows[0].n });

  // A named statement: parsed once, then bound and executed each time.
  let total = 0;
  for (let nps = 0; nps <= 10; nps++) {
    r = await client.query({ name: 'by_nps', text: 'SELECT count(*)::int AS n FROM responses WHERE nps = $1', values: [nps] });
    total += r.rows[0].n;
  }
  out('prepared', { total });

  r = await client.query('SELECT * FROM responses LIMIT 0');
  out('columns', { names: r.fields.map((f) => f.name), type_oids: r.fields.map((f) => f.dataTypeID) });

  // pg-cursor: an unnamed portal read with Execute(max rows) and
  // PortalSuspended, 100 rows at a time.
  const cursor = client.query(new Cursor('SELECT id, country, email FROM responses WHERE nps >= $1 ORDER BY id', [0]));
  let rows = 0;
  let emails = 0;
  const countries = new Set();
  for (;;) {
    const batch = await cursor.read(100);
    if (batch.length === 0) break;
    for (const row of batch) {
      rows++;
      countries.add(row.country);
      if (row.email !== null) emails++;
    }
  }
  await cursor.close();
  out('named_cursor', { rows, countries: [...countries].sort(), emails });

  try {
    await client.query('SELECT login FROM employees');
    out('refused', { sqlstate: null });
  } catch (err) {
    out('refused', { sqlstate: err.code, message: err.message });
  }
  r = await client.query('SELECT 1 AS v');
  out('usable_after_error', { value: r.rows[0].v });
  await client.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
