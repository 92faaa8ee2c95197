-- Reference data: countries, the team tree, surveys and who sees them.

INSERT INTO countries (code, name) VALUES
    ('FR', 'France'),
    ('US', 'USA'),
    ('DE', 'Germany'),
    ('ES', 'Spain'),
    ('IT', 'Italy'),
    ('GB', 'UK');

-- HQ
-- ├── France ── Paris, Lyon
-- ├── USA ── New York
-- ├── Frozen Food
-- │   ├── Pizza ── Thick Crust, Thin Crust
-- │   └── Desserts
-- └── Fresh Produce ── Fruit, Vegetables
INSERT INTO teams (id, name, parent_id) VALUES
    (1,  'HQ',            NULL),
    (2,  'France',        1),
    (3,  'Paris',         2),
    (4,  'Lyon',          2),
    (5,  'USA',           1),
    (6,  'New York',      5),
    (7,  'Frozen Food',   1),
    (8,  'Pizza',         7),
    (9,  'Thick Crust',   8),
    (10, 'Thin Crust',    8),
    (11, 'Desserts',      7),
    (12, 'Fresh Produce', 1),
    (13, 'Fruit',         12),
    (14, 'Vegetables',    12);

INSERT INTO surveys (id, name, project) VALUES
    (1, 'Store Visit',       'Retail'),
    (2, 'Delivery',          'Logistics'),
    (3, 'Banking App',       'Digital'),
    (4, 'Pizza Taste',       'Frozen Food'),
    (5, 'Dessert Tasting',   'Frozen Food'),
    (6, 'Produce Freshness', 'Fresh Produce');

-- HQ sees every survey; country teams the customer-facing ones; product
-- teams their own products' plus some shared ones. Desserts sees only two.
INSERT INTO team_surveys (team_id, survey_id)
SELECT t.id, s.id
FROM (VALUES
        (1,  ARRAY[1, 2, 3, 4, 5, 6]),
        (2,  ARRAY[1, 2, 3]),
        (3,  ARRAY[1, 2, 3]),
        (4,  ARRAY[1, 2, 3]),
        (5,  ARRAY[1, 2, 3]),
        (6,  ARRAY[1, 2, 3]),
        (7,  ARRAY[1, 2, 4, 5]),
        (8,  ARRAY[2, 4]),
        (9,  ARRAY[2, 4]),
        (10, ARRAY[2, 4]),
        (11, ARRAY[1, 5]),
        (12, ARRAY[1, 2, 6]),
        (13, ARRAY[1, 6]),
        (14, ARRAY[1, 6])
     ) AS v(team_id, survey_ids)
JOIN teams AS t ON t.id = v.team_id
CROSS JOIN LATERAL unnest(v.survey_ids) AS s(id);
