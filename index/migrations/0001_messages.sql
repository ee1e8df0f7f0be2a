-- Lazaret PostgreSQL index, schema version 1.
--
-- The store of each node is the truth; these tables are derived from it and
-- can be dropped and rebuilt at any time (lazaret index rebuild). Columns
-- named as in Baruwa's messages and MailWatch's maillog tables carry the same
-- meaning; the others are Lazaret's. See index/doc.go.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Nodes that feed this database, for the hostname column.
CREATE TABLE lazaret_nodes (
    node       integer PRIMARY KEY,
    hostname   text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    -- Baruwa / MailWatch columns.
    messageid      text COLLATE "C" PRIMARY KEY, -- Lazaret/Exim queue id (Baruwa messages.messageid, MailWatch maillog.id)
    hostname       text NOT NULL,                -- name of the node that took the message in
    timestamp      timestamptz NOT NULL,         -- received (microseconds; received_ns is exact)
    date           date NOT NULL,                -- received date, UTC
    from_address   text NOT NULL,                -- envelope sender, '' for the null sender
    from_domain    text,                         -- lower-cased domain of from_address; NULL without '@'
    to_address     text NOT NULL,                -- envelope recipients, comma-joined, in order
    to_domain      text NOT NULL,                -- their distinct lower-cased domains, comma-joined
    subject        text NOT NULL,
    size           bigint NOT NULL,
    clientip       text NOT NULL,
    sascore        double precision NOT NULL,
    spam           boolean NOT NULL,             -- verdict spam or highspam
    highspam       boolean NOT NULL,             -- verdict highspam
    virusinfected  boolean NOT NULL,             -- verdict virus
    isquarantined  boolean NOT NULL,             -- body still held (state quarantined or released)
    spamreport     text NOT NULL,                -- the scanner's report

    -- Lazaret columns.
    received_ns    bigint NOT NULL,              -- received, Unix nanoseconds: the List order and cursor
    recipients     text[] NOT NULL,              -- envelope recipients as given
    rcpt_lower     text[] NOT NULL,              -- recipients lower-cased (Go strings.ToLower)
    rcpt_domains   text[] NOT NULL,              -- lower-cased recipient domains (addresses with '@')
    from_lower     text NOT NULL,                -- from_address lower-cased
    subject_lower  text NOT NULL,                -- subject lower-cased, for substring search
    subject_tsv    tsvector GENERATED ALWAYS AS (to_tsvector('simple', subject)) STORED,
    helo           text NOT NULL,
    header_from    text NOT NULL,
    header_to      text NOT NULL,
    header_date    timestamptz,
    header_message_id text NOT NULL,
    sha256         text NOT NULL,                -- hex SHA-256 of the body
    verdict        text NOT NULL,                -- other, spam, highspam, virus, policy
    scanner        text NOT NULL,
    state          text NOT NULL,                -- quarantined, released, deleted
    learned_as     text NOT NULL,                -- '', spam, ham
    history        jsonb NOT NULL,               -- events: quarantine, learn, release-request, release, delete, ...
    origin_node    integer NOT NULL,             -- number of the node that took the message in
    version_wall   bigint NOT NULL,              -- version (hybrid logical clock) of this record
    version_logical bigint NOT NULL,
    version_node   integer NOT NULL,
    meta           json NOT NULL,                -- the store's metadata record, verbatim
    indexed_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_received ON messages (received_ns DESC, messageid DESC);
CREATE INDEX messages_timestamp ON messages (timestamp);
CREATE INDEX messages_from_lower ON messages (from_lower, received_ns DESC);
CREATE INDEX messages_from_domain ON messages (from_domain, received_ns DESC);
CREATE INDEX messages_rcpt_lower ON messages USING gin (rcpt_lower);
CREATE INDEX messages_rcpt_domains ON messages USING gin (rcpt_domains);
CREATE INDEX messages_subject_trgm ON messages USING gin (subject_lower gin_trgm_ops);
CREATE INDEX messages_subject_tsv ON messages USING gin (subject_tsv);
CREATE INDEX messages_origin ON messages (origin_node, received_ns DESC);

-- One row per recipient, for SQL users and UIs that join on recipients.
CREATE VIEW message_recipients AS
SELECT m.messageid, r.position::integer AS position, r.address,
       lower(substring(r.address from '@([^@]*)$')) AS domain
FROM messages m, unnest(m.recipients) WITH ORDINALITY AS r(address, position);
