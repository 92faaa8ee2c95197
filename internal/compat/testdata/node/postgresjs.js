// postgres.js (npm package postgres, v3) through pgveil, as a Node
// developer uses it: every query a named prepared statement, many queries
// pipelined on one connection, type OIDs fetched at connect, sql.begin,
// cursors, forEach, COPY TO as a stream, sql.listen, sql.unsafe (simple
// protocol) and prepare: false. Prints one JSON object a line; a check
// that fails prints its SQLSTATE, one that hangs prints "timeout".
//
// Usage: node postgresjs.js   (connection from PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGDATABASE; run `npm ci` here first)
'use strict';

const postgres = require('postgres');

function out(check, fields) {
  console.log(JSON.stringify(Object.assign({ check }, fields)));
}

// within fails a check that does not finish in 30 s: a hang is a bug,
// and the other checks still run and report.
function within(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(what + ' timed out'), { code: 'timeout' })), 30000);
    }),
  ]).finally(() => clearTimeout(timer));
}

// run runs one check; an error is printed as the check's result.
async function run(check, fn) {
  try {
    out(check, await within(fn(), check));
  } catch (err) {
    out(check, { error: err.code || 'client', message: err.message });
  }
}

function connect(extra) {
  return postgres(
    Object.assign(
      {
        host: process.env.PGHOST,
        port: Number(process.env.PGPORT),
        user: process.env.PGUSER,
        pass: process.env.PGPASSWORD,
        database: process.env.PGDATABASE,
        ssl: false,
        // One connection: every query below is pipelined on it.
        max: 1,
        connect_timeout: 10,
        onnotice: () => {},
        connection: { application_name: 'pgveil-compat' },
      },
      extra,
    ),
  );
}

async function checks(sql, prefix) {
  const p = (name) => prefix + name;

  await run(p('countries'), async () => {
    const r = await sql`SELECT DISTINCT country FROM responses ORDER BY 1`;
    return { values: r.map((x) => x.country) };
  });

  await run(p('masked'), async () => {
    const [r] = await sql`SELECT count(*) FILTER (WHERE contact IS NOT NULL)::int AS contact,
      count(*) FILTER (WHERE email IS NOT NULL)::int AS email,
      count(*) FILTER (WHERE score IS NOT NULL)::int AS score FROM responses`;
    return r;
  });

  await run(p('param'), async () => {
    const [r] = await sql`SELECT count(*)::int AS n FROM responses WHERE country = ${'USA'} AND nps >= ${0}`;
    return { count: r.n };
  });

  // Parameters of the common types, echoed back, then selecting rows.
  await run(p('typed_params'), async () => {
    const when = new Date('2025-07-01T00:00:00Z');
    const [e] = await sql`SELECT ${42}::int AS i, ${'café'}::text AS t, ${'12.50'}::numeric AS n,
      ${when}::timestamptz AS ts, ${sql.json({ a: [1, 2] })}::json AS j, ${[1, 2, 3]}::int[] AS a,
      ${['France', 'USA']}::text[] AS ta, ${null}::text AS z, ${true}::bool AS b`;
    const echoed =
      e.i === 42 && e.t === 'café' && e.n === '12.50' && e.ts.getTime() === when.getTime() &&
      JSON.stringify(e.j) === '{"a":[1,2]}' && JSON.stringify(e.a) === '[1,2,3]' &&
      JSON.stringify(e.ta) === '["France","USA"]' && e.z === null && e.b === true;
    const [r] = await sql`SELECT count(*)::int AS n FROM responses WHERE country = ANY(${['France', 'USA']}::text[])
      AND nps >= ${5} AND submitted_at >= ${when}`;
    const [m] = await sql`SELECT count(*)::int AS n FROM responses WHERE score >= ${0}`;
    return { echoed, echo: e, count: r.n, masked_predicate: m.n };
  });

  // 50 queries at once on the one connection: postgres.js writes them
  // all before reading any answer.
  await run(p('pipeline'), async () => {
    const seq = [];
    for (let nps = 0; nps <= 10; nps++) {
      const [r] = await sql`SELECT count(*)::int AS n FROM responses WHERE nps = ${nps}`;
      seq.push(r.n);
    }
    const rs = await Promise.all(
      Array.from({ length: 50 }, (_, i) => sql`SELECT count(*)::int AS n, ${i}::int AS i FROM responses WHERE nps = ${i % 11}`),
    );
    const consistent = rs.every((r, i) => r[0].i === i && r[0].n === seq[i % 11]);
    return { queries: rs.length, consistent, total: seq.reduce((a, b) => a + b, 0) };
  });

  // A refused statement in the middle of a pipeline: only it fails.
  await run(p('pipeline_error'), async () => {
    const qs = [
      sql`SELECT count(*)::int AS n FROM responses`,
      sql`SELECT ${1}::int AS v`,
      sql`SELECT login FROM employees WHERE login = ${'marie'}`,
      sql`SELECT count(*)::int AS n FROM responses WHERE nps >= ${0}`,
      sql`SELECT ${2}::int AS v`,
    ];
    const rs = await Promise.allSettled(qs);
    return {
      results: rs.map((r) => (r.status === 'fulfilled' ? Object.values(r.value[0])[0] : r.reason.code)),
      message: rs[2].status === 'rejected' ? rs[2].reason.message : null,
    };
  });

  await run(p('transaction'), async () => {
    const [a, b] = await sql.begin((sql) => [
      sql`SELECT count(*)::int AS n FROM responses`,
      sql`SELECT count(*)::int AS n FROM responses WHERE nps >= ${0}`,
    ]);
    let rolledBack = null;
    try {
      await sql.begin(async (sql) => {
        await sql`SELECT count(*)::int AS n FROM responses`;
        throw Object.assign(new Error('rollback'), { code: 'app' });
      });
    } catch (err) {
      rolledBack = err.code;
    }
    let refused = null;
    try {
      await sql.begin(async (sql) => {
        await sql`SELECT count(*)::int AS n FROM responses`;
        await sql`SELECT login FROM employees`;
      });
    } catch (err) {
      refused = err.code;
    }
    const [s] = await sql.begin(async (sql) => {
      await sql.savepoint(async (sql) => sql`SELECT 1 / ${0}::int`).catch(() => {});
      return sql`SELECT count(*)::int AS n FROM responses`;
    });
    const [after] = await sql`SELECT ${1}::int AS v`;
    return { counts: [a[0].n, b[0].n], rolled_back: rolledBack, refused, after_savepoint: s.n, value: after.v };
  });

  await run(p('cursor'), async () => {
    let rows = 0;
    let emails = 0;
    let batches = 0;
    const countries = new Set();
    for await (const batch of sql`SELECT id, country, email FROM responses WHERE nps >= ${0} ORDER BY id`.cursor(100)) {
      batches++;
      for (const row of batch) {
        rows++;
        countries.add(row.country);
        if (row.email !== null) emails++;
      }
    }
    return { rows, batches, countries: [...countries].sort(), emails };
  });

  await run(p('for_each'), async () => {
    let rows = 0;
    let contacts = 0;
    const countries = new Set();
    await sql`SELECT country, contact FROM responses`.forEach((row) => {
      rows++;
      countries.add(row.country);
      if (row.contact !== null) contacts++;
    });
    return { rows, countries: [...countries].sort(), contacts };
  });

  // COPY on a connection of its own: postgres.js 3.4 can leave its socket
  // paused after a COPY TO stream (porsager/postgres#499), with or
  // without pgveil, and the connection's next query would hang.
  await run(p('copy_out'), async () => {
    const own = connect({ prepare: sql.options.prepare });
    const readable = await own`COPY responses (country, email) TO STDOUT`.readable();
    let text = '';
    for await (const chunk of readable) text += chunk.toString();
    const lines = text.split('\n').filter((l) => l !== '');
    const countries = new Set();
    let emails = 0;
    for (const l of lines) {
      const [country, email] = l.split('\t');
      countries.add(country);
      if (email !== '\\N') emails++;
    }
    await own.end({ timeout: 1 });
    return { rows: lines.length, countries: [...countries].sort(), emails };
  });

  await run(p('unsafe_multi'), async () => {
    const rs = await sql.unsafe('SELECT count(*)::int AS n FROM responses; SELECT 1 AS v');
    return { results: rs.map((r) => Object.values(r[0])[0]) };
  });

  await run(p('unsafe_refused'), async () => {
    try {
      await sql.unsafe('SELECT 1 AS v; SELECT login FROM employees');
      return { sqlstate: null };
    } catch (err) {
      const [r] = await sql.unsafe('SELECT 1 AS v');
      return { sqlstate: err.code, message: err.message, value: r.v };
    }
  });

  // Two-phase commit is refused; the refusal ends the transaction, as a
  // failing PREPARE TRANSACTION does, and postgres.js releases the
  // connection.
  await run(p('prepare_transaction'), async () => {
    let sqlstate = null;
    let message = null;
    try {
      await sql.begin(async (sql) => {
        await sql`SELECT count(*)::int AS n FROM responses`;
        sql.prepare('pgveil_compat');
      });
    } catch (err) {
      sqlstate = err.code;
      message = err.message;
    }
    const [r] = await sql`SELECT ${1}::int AS v`;
    return { sqlstate, message, value: r.v };
  });

  await run(p('columns'), async () => {
    const r = await sql`SELECT * FROM responses LIMIT 0`;
    return { names: r.columns.map((c) => c.name), type_oids: r.columns.map((c) => c.type) };
  });

  await run(p('refused'), async () => {
    try {
      await sql`SELECT login FROM employees`;
      return { sqlstate: null };
    } catch (err) {
      return { sqlstate: err.code, message: err.message };
    }
  });

  await run(p('usable_after_error'), async () => {
    const [r] = await sql`SELECT 1 AS v`;
    return { value: r.v };
  });
}

async function main() {
  const sql = connect({});
  out('version', { driver: JSON.parse(require('fs').readFileSync(require('path').join(__dirname, 'node_modules', 'postgres', 'package.json'))).version });
  await checks(sql, '');

  // LISTEN runs on a connection of its own; pgveil refuses it by policy.
  await run('listen', async () => {
    try {
      await sql.listen('pgveil_compat', () => {});
      return { sqlstate: null };
    } catch (err) {
      return { sqlstate: err.code, message: err.message };
    }
  });
  await run('notify', async () => {
    try {
      await sql.notify('pgveil_compat', 'hello');
      return { sqlstate: null };
    } catch (err) {
      return { sqlstate: err.code, message: err.message };
    }
  });
  await run('usable_after_listen', async () => {
    const [r] = await sql`SELECT 1 AS v`;
    return { value: r.v };
  });
  await sql.end({ timeout: 5 });

  // Unnamed statements only (as behind a pooler that cannot keep them).
  const unnamed = connect({ prepare: false });
  await checks(unnamed, 'unnamed_');
  await unnamed.end({ timeout: 5 });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
