-- Survey responses: four hand-written rows (ids 1-4), then 3000 generated
-- ones (ids 5-3004). The generated data is deterministic: a fixed seed, and
-- every random() call is evaluated once per row in generate_series order.
--
-- Invariants of the generated rows, which the demo relies on:
--   * agent_login is an employee and team_id is that employee's team;
--   * survey_id is one of the surveys the agent's team sees (team_surveys);
--   * agents of France/Paris/Lyon answer French customers (branch Paris or
--     Lyon), agents of USA/New York American ones (branch New York);
--   * country is a countries.name, submitted_at lies in 2025-2026 (UTC).

INSERT INTO responses (id, survey_id, contact, email, country, branch, nps, score,
                       agent_login, team_id, tags, sentiment, comment, submitted_at)
VALUES
    (1, 1, 'Camille Martin', 'camille.martin@example.fr', 'France', 'Paris', 9, 88.50,
     'chloe', 3, ARRAY['Staff', 'Quality'], 'positive',
     'Très bon accueil en magasin, vendeuse très aimable.', '2025-03-14 10:21:00+00'),
    (2, 2, 'Louis Bernard', 'louis.bernard@example.fr', 'France', 'Lyon', 3, 27.25,
     'jules', 4, ARRAY['Delivery', 'Price'], 'negative',
     'Livraison en retard de trois jours et frais de port trop élevés.', '2025-04-02 16:45:00+00'),
    (3, 3, 'Emily Johnson', 'emily.johnson@example.com', 'USA', 'New York', 10, 95.00,
     'ashley', 6, ARRAY['Banking App'], 'positive',
     'The new banking app makes paying at the store really easy.', '2025-05-20 14:05:00+00'),
    (4, 4, 'Michael Smith', 'michael.smith@example.com', 'USA', 'New York', 6, 55.75,
     'tom', 9, ARRAY['Quality', 'Price'], 'neutral',
     'Thick crust pizza was fine but a bit pricey. Call me at 212-555-0148.', '2025-06-11 19:30:00+00');

-- The hand-written rows took ids 1-4 explicitly: generated ones follow.
SELECT setval(pg_get_serial_sequence('responses', 'id'), (SELECT max(id) FROM responses));

SELECT setseed(0.2025);

INSERT INTO responses (survey_id, contact, email, country, branch, nps, score,
                       agent_login, team_id, tags, sentiment, comment, submitted_at)
WITH
r AS MATERIALIZED (
    SELECT g,
           random() AS r_agent,   random() AS r_country, random() AS r_branch,
           random() AS r_survey,  random() AS r_nps,     random() AS r_score,
           random() AS r_tags1,   random() AS r_tags2,   random() AS r_first,
           random() AS r_last,    random() AS r_email,   random() AS r_comment,
           random() AS r_sent,    random() AS r_time
    FROM generate_series(1, 3000) AS g
),
-- Agents that answer customers; tom and ops get fixed shares below.
pool AS (
    SELECT ARRAY['chloe', 'hugo', 'ines', 'jules', 'manon', 'nathan', 'ashley', 'brandon',
                 'jessica', 'sarah', 'kevin', 'emma', 'lucas', 'zoe', 'noah', 'olivia',
                 'ethan', 'mia', 'leo', 'lea', 'bpo_a', 'bpo_a2', 'bpo_a3', 'bpo_b',
                 'bpo_b2', 'bpo_b3'] AS agents
),
people (country, tld, first_names, last_names, branches) AS (
    VALUES
    ('France', 'fr',
     ARRAY['Camille', 'Louis', 'Manon', 'Hugo', 'Sophie', 'Antoine', 'Julie', 'Nicolas'],
     ARRAY['Martin', 'Bernard', 'Dubois', 'Thomas', 'Robert', 'Richard', 'Petit', 'Durand'],
     ARRAY['Paris', 'Lyon', 'Marseille', 'Bordeaux']),
    ('USA', 'com',
     ARRAY['Emily', 'Michael', 'Jessica', 'David', 'Ashley', 'James', 'Sarah', 'Robert'],
     ARRAY['Johnson', 'Smith', 'Williams', 'Brown', 'Jones', 'Miller', 'Davis', 'Wilson'],
     ARRAY['New York', 'Chicago', 'Boston']),
    ('Germany', 'de',
     ARRAY['Anna', 'Lukas', 'Lena', 'Felix', 'Marie', 'Jonas', 'Laura', 'Paul'],
     ARRAY['Mueller', 'Schmidt', 'Schneider', 'Fischer', 'Weber', 'Meyer', 'Wagner', 'Becker'],
     ARRAY['Berlin', 'Munich', 'Hamburg']),
    ('Spain', 'es',
     ARRAY['Lucia', 'Hugo', 'Martina', 'Pablo', 'Sofia', 'Alejandro', 'Paula', 'Daniel'],
     ARRAY['Garcia', 'Rodriguez', 'Gonzalez', 'Fernandez', 'Lopez', 'Martinez', 'Sanchez', 'Perez'],
     ARRAY['Madrid', 'Barcelona', 'Valencia']),
    ('Italy', 'it',
     ARRAY['Giulia', 'Francesco', 'Sofia', 'Lorenzo', 'Aurora', 'Alessandro', 'Chiara', 'Matteo'],
     ARRAY['Rossi', 'Russo', 'Ferrari', 'Esposito', 'Bianchi', 'Romano', 'Colombo', 'Ricci'],
     ARRAY['Rome', 'Milan', 'Naples']),
    ('UK', 'co.uk',
     ARRAY['Olivia', 'Oliver', 'Amelia', 'George', 'Isla', 'Harry', 'Ava', 'Jack'],
     ARRAY['Smith', 'Jones', 'Taylor', 'Brown', 'Williams', 'Wilson', 'Evans', 'Thomas'],
     ARRAY['London', 'Manchester', 'Edinburgh'])
),
comments (sentiment, texts) AS (
    VALUES
    ('positive', ARRAY[
        'Great service, the staff were very helpful.',
        'Delivery arrived early and everything was perfect.',
        'Love the quality, will buy again.',
        'The banking app is fast and easy to use.',
        'Excellent value for the price.',
        'Friendly staff, please thank Julie at the counter.']),
    ('neutral', ARRAY[
        'Fine overall, nothing special.',
        'Delivery was on time but the packaging was damaged.',
        'Prices went up a little since last month.',
        'The app works but logging in is slow.',
        'Good products, long queue at the checkout.']),
    ('negative', ARRAY[
        'Delivery was late and nobody answered the phone.',
        'Too expensive for the quality.',
        'The banking app crashed twice during payment.',
        'Rude staff at the counter.',
        'Product was not fresh. Please call me back on +33 6 12 34 56 78.',
        'Still waiting for my refund, my card ends in 4242.'])
),
picked AS (
    SELECT r.*,
           CASE
               WHEN r.r_agent < 0.05 THEN 'tom'
               WHEN r.r_agent < 0.07 THEN 'ops'
               ELSE pool.agents[1 + least(floor((r.r_agent - 0.07) / 0.93 * cardinality(pool.agents))::int,
                                          cardinality(pool.agents) - 1)]
           END AS agent
    FROM r CROSS JOIN pool
),
located AS (
    SELECT p.*, e.team_id,
           CASE
               WHEN e.team_id IN (2, 3, 4) THEN 'France'
               WHEN e.team_id IN (5, 6) THEN 'USA'
               ELSE (ARRAY['France', 'USA', 'Germany', 'Spain', 'Italy', 'UK'])[1 + floor(p.r_country * 6)::int]
           END AS country,
           (SELECT array_agg(ts.survey_id ORDER BY ts.survey_id)
              FROM team_surveys AS ts WHERE ts.team_id = e.team_id) AS visible
    FROM picked AS p
    JOIN employees AS e ON e.login = p.agent
),
scored AS (
    SELECT l.*, pe.tld, pe.first_names, pe.last_names,
           CASE l.team_id
               WHEN 3 THEN 'Paris'
               WHEN 4 THEN 'Lyon'
               WHEN 2 THEN (ARRAY['Paris', 'Lyon'])[1 + floor(l.r_branch * 2)::int]
               WHEN 5 THEN 'New York'
               WHEN 6 THEN 'New York'
               ELSE pe.branches[1 + floor(l.r_branch * cardinality(pe.branches))::int]
           END AS branch,
           l.visible[1 + floor(l.r_survey * cardinality(l.visible))::int] AS survey_id,
           least(10, floor(11 * sqrt(l.r_nps)))::int AS nps
    FROM located AS l
    JOIN people AS pe ON pe.country = l.country
),
final AS (
    SELECT s.*,
           s.first_names[1 + floor(s.r_first * 8)::int] AS first_name,
           s.last_names[1 + floor(s.r_last * 8)::int] AS last_name,
           CASE
               WHEN s.r_sent < 0.08 THEN 'neutral'
               WHEN s.nps >= 9 THEN 'positive'
               WHEN s.nps >= 7 THEN 'neutral'
               ELSE 'negative'
           END AS sentiment,
           (floor(s.r_tags1 * 32)::int & floor(s.r_tags2 * 32)::int)
             | CASE s.survey_id WHEN 3 THEN 1 WHEN 2 THEN 2 ELSE 0 END AS tag_mask
    FROM scored AS s
)
SELECT f.survey_id,
       f.first_name || ' ' || f.last_name,
       CASE WHEN f.r_email < 0.1 THEN NULL
            ELSE lower(f.first_name || '.' || f.last_name) || f.g || '@example.' || f.tld END,
       f.country,
       f.branch,
       f.nps,
       round((f.nps * 9 + f.r_score * 10)::numeric, 2),
       f.agent,
       f.team_id,
       ARRAY(SELECT u.tag
               FROM unnest(ARRAY['Banking App', 'Delivery', 'Price', 'Staff', 'Quality']) WITH ORDINALITY AS u(tag, i)
              WHERE f.tag_mask & (1 << (u.i::int - 1)) <> 0
              ORDER BY u.i),
       f.sentiment,
       CASE WHEN f.r_comment < 0.25 THEN NULL
            ELSE c.texts[1 + floor((f.r_comment - 0.25) / 0.75 * cardinality(c.texts))::int] END,
       date_trunc('second', timestamptz '2025-01-01 00:00:00+00' + f.r_time * interval '730 days')
FROM final AS f
JOIN comments AS c ON c.sentiment = f.sentiment
ORDER BY f.g;

CREATE INDEX responses_country_idx ON responses (country);
CREATE INDEX responses_team_id_idx ON responses (team_id);
CREATE INDEX responses_agent_login_idx ON responses (agent_login);
CREATE INDEX responses_survey_id_idx ON responses (survey_id);
CREATE INDEX responses_tags_idx ON responses USING gin (tags);

ANALYZE;
