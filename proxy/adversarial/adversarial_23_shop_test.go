package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// shop23DB is the database of TestAdversarial23Shop: a new DBA's
// e-commerce schema, its orders partitioned by month (so that orders.id
// is not unique and no foreign key backs the children that follow it:
// order_lines, payments, returns), a governed view of daily sales, and
// hash pseudonyms of customers.
const shop23DB = "shop23"

// shop23Schema builds shop23DB. Stores 1, 2 and 4 are the north, 3 the
// south; customer g belongs to store 1 + g % 4, order g to customer
// 1 + 7g % 12; the orders span October to December and a default
// partition; payment 9999 is an orphan. Every row of store 3 holds
// HIDDEN in its text (returns' reason), which no store-scoped user may
// see. Passwords are "demo-<login>".
const shop23Schema = `
CREATE SCHEMA shop;
CREATE TABLE shop.stores(id int PRIMARY KEY, region text NOT NULL);
CREATE TABLE shop.customers(id int PRIMARY KEY, store_id int NOT NULL REFERENCES shop.stores, name text, email text,
  birth_date date, loyalty_tier text);
CREATE TABLE shop.orders(id bigint NOT NULL, store_id int NOT NULL REFERENCES shop.stores, customer_id int REFERENCES shop.customers,
  placed_at timestamptz NOT NULL, status text NOT NULL DEFAULT 'new', total numeric(12,2), margin numeric(12,2),
  PRIMARY KEY (id, placed_at)) PARTITION BY RANGE (placed_at);
CREATE TABLE shop.orders_2026_10 PARTITION OF shop.orders FOR VALUES FROM ('2026-10-01 00:00+00') TO ('2026-11-01 00:00+00');
CREATE TABLE shop.orders_2026_11 PARTITION OF shop.orders FOR VALUES FROM ('2026-11-01 00:00+00') TO ('2026-12-01 00:00+00');
CREATE TABLE shop.orders_default PARTITION OF shop.orders DEFAULT;
CREATE TABLE shop.order_lines(order_id bigint NOT NULL, line_no int NOT NULL, qty int NOT NULL, unit_price numeric(10,2) NOT NULL,
  PRIMARY KEY (order_id, line_no));
CREATE TABLE shop.payments(order_id bigint NOT NULL, method text NOT NULL, card_last4 text, amount numeric(12,2));
CREATE TABLE shop.returns(id serial PRIMARY KEY, order_id bigint NOT NULL, line_no int NOT NULL, reason text,
  FOREIGN KEY (order_id, line_no) REFERENCES shop.order_lines ON DELETE CASCADE);
CREATE VIEW shop.v_daily_sales AS
  SELECT o.store_id, date_trunc('day', o.placed_at AT TIME ZONE 'UTC')::date AS day, count(*) AS orders,
         sum(o.total) AS revenue, sum(o.margin) AS margin
  FROM shop.orders o GROUP BY 1, 2;
INSERT INTO shop.stores VALUES (1,'north'),(2,'north'),(3,'south'),(4,'north');
INSERT INTO shop.customers SELECT g, 1 + g % 4, 'Customer ' || g, 'c' || g || '@example.com',
  date '1960-01-01' + (g * 397) % 15000, (ARRAY['bronze','silver','gold'])[1 + g % 3] FROM generate_series(1, 12) g;
INSERT INTO shop.orders SELECT g, c.store_id, c.id, timestamptz '2026-10-01 08:00+00' + g * interval '2 days 3 hours',
  (ARRAY['new','paid','shipped','cancelled'])[1 + g % 4], 10 * g, round(g * 1.37 % 50, 2)
  FROM generate_series(1, 40) g JOIN shop.customers c ON c.id = 1 + (g * 7) % 12;
INSERT INTO shop.order_lines SELECT o.id, l, 1 + (o.id + l) % 4, 5 + (o.id * 3 + l) % 60
  FROM shop.orders o, generate_series(1, 1 + (o.id % 3)::int) l;
INSERT INTO shop.payments SELECT o.id, 'card', lpad(((o.id * 7919) % 10000)::text, 4, '0'), o.total FROM shop.orders o;
INSERT INTO shop.payments VALUES (9999, 'card', '4242', 10);
INSERT INTO shop.returns(order_id, line_no, reason) SELECT l.order_id, l.line_no,
  CASE WHEN o.store_id = 3 THEN 'HIDDEN ' ELSE '' END || 'damaged #' || l.order_id
  FROM shop.order_lines l JOIN shop.orders o ON o.id = l.order_id WHERE l.line_no = 1;
GRANT USAGE ON SCHEMA shop TO pgveil_svc;
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO pgveil_svc;
GRANT INSERT, UPDATE, DELETE ON shop.orders, shop.order_lines, shop.payments, shop.returns TO pgveil_svc;
REVOKE TEMP ON DATABASE shop23 FROM PUBLIC;
`

// shop23Policy is the DBA's policy, as written from the docs: a store
// manager (mia, store 1), a regional director (rita, the north through
// a subquery of shop.stores), a data scientist with pseudonyms (dan) and
// the order-entry application (app, store 2, select and update).
const shop23Policy = `
listen {
  address  = "127.0.0.1:6432"
  database = "shop23"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "shop23"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
schema "shop" { default = "deny" }
role "store_manager" {
  statements = ["select"]
  columns    = ["pii", "customer_key"]
}
role "regional_director" {
  statements = ["select"]
  columns    = ["pii", "customer_key"]
}
role "data_scientist" { statements = ["select"] }
role "order_entry" {
  statements = ["select", "insert", "update"]
  columns    = ["customer_key"]
}
table "shop.stores" { reference = true }
table "shop.customers" {
  column "id" {
    class  = "customer_key"
    mask   = "hash"
    secret = "shop23-hash-secret-0123456789abcdef"
  }
  column "name" { class = "pii" }
  column "email" {
    class  = "pii"
    mask   = "hash"
    secret = "shop23-hash-secret-0123456789abcdef"
  }
  column "birth_date" {
    class      = "pii"
    mask       = "expression"
    expression = "make_date(extract(year from birth_date)::int, 1, 1)"
  }
}
table "shop.orders" {
  column "customer_id" {
    class  = "customer_key"
    mask   = "hash"
    secret = "shop23-hash-secret-0123456789abcdef"
  }
  column "margin" { class = "margin" }
}
table "shop.order_lines" {
  follows = { table = "shop.orders", column = "order_id", key = "id" }
}
table "shop.payments" {
  follows = { table = "shop.orders", column = "order_id", key = "id" }
  column "card_last4" { class = "card" }
}
table "shop.returns" {
  follows = { table = "shop.orders", column = "order_id", key = "id" }
}
table "shop.v_daily_sales" {
  column "margin" { class = "margin" }
}
rule "own_store" {
  tables = ["shop.customers", "shop.orders", "shop.v_daily_sales"]
  roles  = ["store_manager", "order_entry"]
  where  = "store_id = me.store"
}
rule "region" {
  tables = ["shop.customers", "shop.orders", "shop.v_daily_sales"]
  roles  = ["regional_director"]
  where  = "store_id IN (SELECT s.id FROM shop.stores s WHERE s.region = me.region)"
}
rule "everything" {
  tables = ["shop.*"]
  roles  = ["data_scientist"]
  scope  = "all"
}
rule "stores" {
  tables = ["shop.stores"]
  roles  = ["store_manager", "regional_director", "order_entry"]
  scope  = "all"
}
user "mia" {
  password   = "SCRAM-SHA-256$4096:Q2EAAnn03OFcIseIhLlezA==$m4EyduZdJIJyGqtTajvlK9buXRMhxMKNcD+PQePz6Xk=:VGOZba59SUo9//0lbWNTbwh+cOYQ1s8VNQkgzTUMbAM="
  roles      = ["store_manager"]
  attributes = { store = 1 }
}
user "rita" {
  password   = "SCRAM-SHA-256$4096:Rnos3mH1yTnTcHKOXyNsuA==$ETVOcQyNQNsij5PatEnH5IphVYfQWrrXzrYtVeB4u3M=:t9GN3exahyVvwYDh0ZGtCoO3fu/nZ382s4fsOygYHuY="
  roles      = ["regional_director"]
  attributes = { region = "north" }
}
user "dan" {
  password = "SCRAM-SHA-256$4096:gZytvmpB3DKl+cBt8rXL5w==$1GSoQHTmQyro+Ecqw3y3cMEzPgDGSTRcV6TAVqm7fcM=:j0oaRQACngeQVoBQSyjjaWK2Bfk7VUEw2LeVU7nriig="
  roles    = ["data_scientist"]
}
user "app" {
  password   = "SCRAM-SHA-256$4096:qcFbU0jYNL/Qed/OQVOHCg==$ervRFm2lIPCEbcOA2dpYagDHgWrC97/+PhI2BhyE1IY=:xWKrcMxP5fPygv90e6Sw7K6OsVO91kxQSHeiu8uCm0A="
  roles      = ["order_entry"]
  attributes = { store = 2 }
}
`

// shop23Data is the database and policy TestAdversarial23Shop serves.
var shop23Data = &proxytest.PolicyDB{DB: shop23DB, What: "shop", Schema: shop23Schema, Policy: shop23Policy, MaskKeys: true}

// TestAdversarial23Shop holds the twenty-third red team's (b) angles on
// the shop policy, as users through pgveil: each answer, on both
// protocols, is the rows the truth read directly gives, or a refusal.
// The writes that pass change nothing the reads count.
func TestAdversarial23Shop(t *testing.T) {
	p := shop23Data.Start(t)
	ctx := context.Background()

	// rowsText is a result's rows as text, or "ERROR <sqlstate>".
	rowsText := func(rr []*pgconn.Result, err error) string {
		var b strings.Builder
		for _, r := range rr {
			if err == nil && r.Err != nil {
				err = r.Err
			}
			for _, row := range r.Rows {
				b.WriteString("[")
				for i, v := range row {
					if i > 0 {
						b.WriteString(" ")
					}
					if v == nil {
						b.WriteString("NULL")
					} else {
						b.Write(v)
					}
				}
				b.WriteString("]")
			}
		}
		if err != nil {
			return "ERROR " + proxytest.SQLState(err)
		}
		return b.String()
	}
	// answer runs sql as user on both protocols (text results both), the
	// same answer on both or the test fails.
	answer := func(t *testing.T, c *pgconn.PgConn, sql string) string {
		t.Helper()
		simple := rowsText(c.Exec(ctx, sql).ReadAll())
		r := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		extended := rowsText([]*pgconn.Result{r}, nil)
		if simple != extended {
			t.Fatalf("%s: the protocols disagree:\nsimple: %s\nextended: %s", sql, simple, extended)
		}
		if strings.Contains(simple, "HIDDEN") {
			t.Errorf("%s: the answer holds a hidden row's value:\n%s", sql, simple)
		}
		return simple
	}
	// truth reads sql directly, as the owner: the rows a user should see.
	truth := func(t *testing.T, sql string) string {
		t.Helper()
		c, err := proxytest.Cluster.Connect(ctx, shop23DB)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		return rowsText([]*pgconn.Result{c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()}, nil)
	}

	const (
		store1  = `order_id IN (SELECT id FROM shop.orders WHERE store_id = 1)`
		north   = `order_id IN (SELECT id FROM shop.orders WHERE store_id IN (1, 2, 4))`
		refused = "ERROR 42501"
		none    = `SELECT 1 WHERE false`
	)
	cases := []struct {
		name, user, sql string
		// truth is what a direct read answers: the rows the user may see.
		truth string
	}{
		// Children of a partitioned parent whose id is not unique.
		{"a manager reads her store's order lines", "mia",
			`SELECT order_id, line_no FROM shop.order_lines ORDER BY 1, 2`,
			`SELECT order_id, line_no FROM shop.order_lines WHERE ` + store1 + ` ORDER BY 1, 2`},
		{"GROUP BY order_id counts and sums her store's payments only", "mia",
			`SELECT order_id, count(*), sum(amount) FROM shop.payments GROUP BY 1 ORDER BY 1`,
			`SELECT order_id, count(*), sum(amount) FROM shop.payments WHERE ` + store1 + ` GROUP BY 1 ORDER BY 1`},
		{"a window over the returns counts hers", "mia",
			`SELECT DISTINCT count(*) OVER () FROM shop.returns`,
			`SELECT DISTINCT count(*) OVER () FROM shop.returns WHERE ` + store1},
		{"EXISTS of a line under each return finds hers", "mia",
			`SELECT count(*) FROM shop.returns r WHERE EXISTS (SELECT 1 FROM shop.order_lines l WHERE l.order_id = r.order_id AND l.line_no = r.line_no)`,
			`SELECT count(*) FROM shop.returns WHERE ` + store1},
		{"the orphan payment shows to no one", "mia",
			`SELECT count(*) FROM shop.payments WHERE order_id = 9999`, `SELECT 0`},
		{"a division by zero only a hidden order's id causes raises nothing", "mia",
			`SELECT count(*) FROM shop.order_lines WHERE 1 / (order_id - 3) IS NOT NULL`,
			`SELECT count(*) FROM shop.order_lines WHERE ` + store1},
		{"partitions read by name, ONLY and the default partition keep the scope", "mia",
			`SELECT (SELECT count(*) FROM shop.orders_2026_10), (SELECT count(*) FROM shop.orders_default), (SELECT count(*) FROM ONLY shop.orders)`,
			`SELECT (SELECT count(*) FROM shop.orders_2026_10 WHERE store_id = 1), (SELECT count(*) FROM shop.orders_default WHERE store_id = 1), 0`},
		{"tableoid is no column of a governed table", "mia",
			`SELECT tableoid::regclass, count(*) FROM shop.orders GROUP BY 1`, "ERROR 42703"},
		{"the children of a partition's orders are hers", "mia",
			`SELECT count(*) FROM shop.payments p JOIN shop.orders_2026_11 o ON o.id = p.order_id`,
			`SELECT count(*) FROM shop.payments p JOIN shop.orders_2026_11 o ON o.id = p.order_id WHERE o.store_id = 1`},
		{"a director's rule subquery gives the north's children", "rita",
			`SELECT count(*), sum(amount) FROM shop.payments`,
			`SELECT count(*), sum(amount) FROM shop.payments WHERE ` + north},
		// Masked margin and card.
		{"margin answers no predicate, bucket, percentile or division", "mia",
			`SELECT count(*) FILTER (WHERE margin > 0), max(width_bucket(margin, 0, 50, 10)),
			   percentile_cont(0.5) WITHIN GROUP (ORDER BY margin), count(1 / (margin - 5)) FROM shop.orders`,
			`SELECT 0, NULL, NULL, 0`},
		{"ORDER BY margin keeps the id order", "mia",
			`SELECT id FROM shop.orders ORDER BY margin, id`, `SELECT id FROM shop.orders WHERE store_id = 1 ORDER BY id`},
		{"the card is masked", "mia",
			`SELECT count(card_last4), count(*) FILTER (WHERE card_last4 LIKE '1%') FROM shop.payments`, `SELECT 0, 0`},
		{"the governed view gives her store's days, margin masked", "mia",
			`SELECT store_id, sum(orders), sum(revenue), sum(margin) FROM shop.v_daily_sales GROUP BY 1`,
			`SELECT store_id, sum(orders), sum(revenue), NULL FROM shop.v_daily_sales WHERE store_id = 1 GROUP BY 1`},
		{"the view's margin answers no division", "rita",
			`SELECT count(*) FROM shop.v_daily_sales WHERE 1 / (margin - 1.37) > 0`, `SELECT 0`},
		// Pseudonyms.
		{"a customer's real id finds no pseudonym", "dan",
			`SELECT (SELECT count(*) FROM shop.customers WHERE id = 4), (SELECT count(*) FROM shop.orders WHERE customer_id = 4)`,
			`SELECT 0, 0`},
		{"md5 and sha256 of a guessed email match no pseudonym", "dan",
			`SELECT count(*) FROM shop.customers WHERE email IN (md5('c4@example.com'), encode(sha256('c4@example.com'), 'hex'))`,
			`SELECT 0`},
		{"the pseudonyms join orders to customers", "dan",
			`SELECT count(*) FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id`, `SELECT count(*) FROM shop.orders`},
		{"the birth date is the year's first day", "dan",
			`SELECT count(*) FROM shop.customers WHERE extract(doy FROM birth_date) <> 1`, `SELECT 0`},
		{"pgveil's hash function is refused", "dan",
			`SELECT pgveil.mask_hash('c4@example.com', 'x')`, refused},
		{"a pseudonym cast to the key's type fails on the pseudonym", "dan",
			`SELECT customer_id::int FROM shop.orders`, "ERROR 22003"},
		// The application's writes.
		{"a status update of a hidden order updates none", "app",
			`UPDATE shop.orders SET status = status WHERE id = 3 RETURNING id`, none},
		{"an update's WHERE sees the masked margin", "app",
			`UPDATE shop.orders SET status = status WHERE margin > 0 RETURNING id`, none},
		{"an update of a hidden order's lines updates none", "app",
			`UPDATE shop.order_lines SET qty = qty WHERE order_id = 3 RETURNING order_id`, none},
		{"SET reading the margin is refused", "app",
			`UPDATE shop.orders SET status = margin::text WHERE id = 4`, refused},
		{"SET of the whole row is refused", "app",
			`UPDATE shop.orders SET status = to_jsonb(orders)::text WHERE id = 4`, refused},
		{"RETURNING * is refused", "app",
			`UPDATE shop.orders SET status = status WHERE id = 4 RETURNING *`, refused},
		{"moving an order to a store is refused", "app",
			`UPDATE shop.orders SET store_id = 1 WHERE id = 4`, refused},
		{"moving an order to another id is refused", "app",
			`UPDATE shop.orders SET id = 3 WHERE id = 4`, refused},
		{"moving an order to another partition is refused", "app",
			`UPDATE shop.orders SET placed_at = placed_at + interval '1 month' WHERE id = 4`, refused},
		{"moving an order to another customer is refused", "app",
			`UPDATE shop.orders SET customer_id = 1 WHERE id = 4`, refused},
		{"moving a payment to another order is refused", "app",
			`UPDATE shop.payments SET order_id = 3 WHERE order_id = 4`, refused},
		{"renumbering a line is refused", "app",
			`UPDATE shop.order_lines SET line_no = 9 WHERE order_id = 4`, refused},
		{"a return's line is refused", "app",
			`UPDATE shop.returns SET line_no = 2`, refused},
		{"INSERT of an order is refused", "app",
			`INSERT INTO shop.orders (id, store_id, placed_at) VALUES (1001, 2, now())`, refused},
		{"INSERT … ON CONFLICT of a payment is refused", "app",
			`INSERT INTO shop.payments VALUES (4, 'card', NULL, 1) ON CONFLICT DO NOTHING`, refused},
		{"UPDATE … FROM a child is refused", "app",
			`UPDATE shop.orders SET status = 'x' FROM shop.order_lines l WHERE l.order_id = orders.id`, refused},
		{"UPDATE in WITH is refused", "app",
			`WITH u AS (UPDATE shop.orders SET status = 'paid' WHERE id = 4 RETURNING id) SELECT * FROM u`, refused},
		{"UPDATE of the view is refused", "app", `UPDATE shop.v_daily_sales SET revenue = 1`, refused},
	}
	conns := map[string]*pgconn.PgConn{}
	for _, c := range cases {
		if conns[c.user] == nil {
			conns[c.user] = p.Connect(t, c.user).PgConn()
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.truth
			if !strings.HasPrefix(want, "ERROR") {
				want = truth(t, c.truth)
			}
			if got := answer(t, conns[c.user], c.sql); got != want {
				t.Errorf("%s: got\n%s\nwant\n%s", c.sql, got, want)
			}
		})
	}
	t.Run("the hidden rows are all still there", func(t *testing.T) {
		const q = `SELECT count(*) > 0 AND count(*) = (SELECT count(*) FROM shop.returns WHERE order_id IN
		  (SELECT id FROM shop.orders WHERE store_id = 3)) FROM shop.returns WHERE reason LIKE 'HIDDEN%'`
		if got := truth(t, q); got != "[t]" {
			t.Errorf("the hidden returns changed: %s", got)
		}
	})
}
