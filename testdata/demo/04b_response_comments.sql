-- Follow-up notes on responses (response_comments), a child table of
-- responses: four hand-written notes on responses 1, 2 and 4, then 0 to 3
-- generated ones on every tenth response (ids ending in 3). Deterministic
-- without random(): everything is a function of the response's id.
--
-- Invariants the demo relies on:
--   * every note belongs to a response (NOT NULL, foreign key, deleted
--     with it: erasing a response erases its notes): none is
--     orphaned, so every note is visible to whoever sees its response;
--   * the first note of a response is by its agent, the second by
--     survey_admin, the third by hq; author_email is the author's
--     employees.email; created_at follows the response's submitted_at.
-- NOTE: this file runs after 04_responses.sql (name order) and before
-- 05_service_account.sql, which grants the table to pgveil_svc.

INSERT INTO response_comments (response_id, author, author_email, body, created_at)
VALUES
    (1, 'chloe', 'chloe@feedback.example', 'Thanked the customer and passed the praise on to the store.', '2025-03-15 09:00:00+00'),
    (2, 'jules', 'jules@feedback.example', 'Offered a refund of the shipping costs.', '2025-04-03 08:30:00+00'),
    (2, 'survey_admin', 'survey.admin@feedback.example', 'Customer accepted the refund; closing.', '2025-04-05 14:10:00+00'),
    (4, 'tom', 'tom@feedback.example', 'Phone number removed from the comment before sharing it.', '2025-06-12 10:00:00+00');

INSERT INTO response_comments (response_id, author, author_email, body, created_at)
SELECT r.id, a.author, e.email,
       (ARRAY['Called the customer back.',
              'Forwarded to the store manager.',
              'Duplicate of an earlier response.',
              'Customer asked to be contacted by email.',
              'Shared with the product team.',
              'No action needed.',
              'Voucher sent as a goodwill gesture.'])[1 + (r.id + k) % 7],
       r.submitted_at + k * interval '1 day' + (r.id % 24) * interval '1 hour'
FROM responses AS r
CROSS JOIN LATERAL generate_series(1, (r.id / 10 % 4)::int) AS k
CROSS JOIN LATERAL (SELECT (ARRAY[r.agent_login, 'survey_admin', 'hq'])[k] AS author) AS a
JOIN employees AS e ON e.login = a.author
WHERE r.id > 4 AND r.id % 10 = 3
ORDER BY r.id, k;

CREATE INDEX response_comments_response_id_idx ON response_comments (response_id);

ANALYZE response_comments;
