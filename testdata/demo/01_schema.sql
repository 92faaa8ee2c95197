-- Demo database "feedback": customer feedback collected by a retail group.
-- Files in this directory run in file-name order, as the superuser, into a
-- fresh database, each with one simple-protocol query.
--
-- Personal data: responses.contact, responses.email and
-- response_comments.author_email.
-- Internal technical value: responses.score.

CREATE TABLE countries (
    code text PRIMARY KEY,
    name text NOT NULL UNIQUE
);
COMMENT ON TABLE countries IS 'ISO 3166 codes; responses.country holds the name, not the code.';

CREATE TABLE teams (
    id        int PRIMARY KEY,
    name      text NOT NULL UNIQUE,
    parent_id int REFERENCES teams
);
COMMENT ON TABLE teams IS 'Organisation tree: parent_id is NULL only for HQ.';

CREATE TABLE employees (
    login      text PRIMARY KEY,
    name       text,
    team_id    int REFERENCES teams,
    group_name text,
    email      text
);
COMMENT ON COLUMN employees.group_name IS 'Role or outsourcing vendor (vendor_a, vendor_b) of the employee.';

CREATE TABLE surveys (
    id      int PRIMARY KEY,
    name    text,
    project text
);

CREATE TABLE team_surveys (
    team_id   int REFERENCES teams,
    survey_id int REFERENCES surveys,
    PRIMARY KEY (team_id, survey_id)
);
COMMENT ON TABLE team_surveys IS 'Which surveys a team may see.';

CREATE TABLE responses (
    id           bigserial PRIMARY KEY,
    survey_id    int REFERENCES surveys,
    contact      text,
    email        text,
    country      text NOT NULL,
    branch       text,
    nps          int CHECK (nps BETWEEN 0 AND 10),
    score        numeric(5,2),
    agent_login  text REFERENCES employees,
    team_id      int REFERENCES teams,
    tags         text[],
    sentiment    text CHECK (sentiment IN ('positive', 'neutral', 'negative')),
    comment      text,
    submitted_at timestamptz NOT NULL
);
COMMENT ON COLUMN responses.contact IS 'Personal data: the respondent''s name.';
COMMENT ON COLUMN responses.email IS 'Personal data: the respondent''s email address.';
COMMENT ON COLUMN responses.score IS 'Internal technical value (model score), not for end users.';
COMMENT ON COLUMN responses.team_id IS 'The team of agent_login.';

CREATE TABLE response_comments (
    id           bigserial PRIMARY KEY,
    response_id  bigint NOT NULL REFERENCES responses ON DELETE CASCADE,
    author       text NOT NULL REFERENCES employees,
    author_email text,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL
);
COMMENT ON TABLE response_comments IS 'Follow-up notes of employees on a response: a child of responses, shown exactly when its response is (follows).';
COMMENT ON COLUMN response_comments.author_email IS 'Personal data: the commenting employee''s email address.';
