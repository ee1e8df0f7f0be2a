// Package index feeds every metadata change of a node's store into a shared
// PostgreSQL database, so that mail-gateway UIs (Baruwa, MailWatch style)
// and `lazaret ls` can search a whole cluster's quarantine with SQL, and it
// holds the schema migrations (package postgres applies them).
//
// # Principles
//
// The store is the truth; the database is derived from it and can be
// rebuilt from it (`lazaret index rebuild`). PostgreSQL being down never
// refuses mail: every metadata change appends a record to a durable outbox
// in the store, in the same transaction as the change (objstore
// Config.Outbox). A [Feeder] drains the outbox in batches whenever the
// database is reachable; the backlog's size and age show in `lazaret status`.
//
// # Feeding
//
// Outbox records name a message and its version; the feeder sends the
// message's current metadata, which is never older than the change recorded.
// Rows are upserted keyed by message id and only replace a row of an older
// version (the (wall, logical, node) tuple of lazaret.Version), so replays,
// several nodes sending the same change and changes arriving out of order
// never duplicate or regress a row. Retention (expiry) deletes the row. If
// the outbox overflows (Config.OutboxMaxRecords) or was off, the feeder
// resynchronises every record of the store instead.
//
// # Schema
//
// migrations/*.sql, embedded in the binary and applied in order at start
// under a PostgreSQL advisory lock (safe when several nodes start at once):
// table messages, with Baruwa/MailWatch columns (messageid, hostname,
// timestamp, date, from_address, from_domain, to_address, to_domain,
// subject, size, clientip, sascore, spam, highspam, virusinfected,
// isquarantined, spamreport) and Lazaret's own (state, verdict, scanner,
// learned_as, history as jsonb, version_wall/logical/node, origin_node, the
// store's metadata record as json); table lazaret_nodes (node number →
// hostname); view message_recipients.
//
// Multiple recipients: to_address holds all envelope recipients
// comma-joined, in order, as MailWatch does, and to_domain their distinct
// domains; searches use the array columns rcpt_lower and rcpt_domains (GIN
// indexed); the view message_recipients has one row per recipient for joins.
//
// # Search semantics
//
// Searches reproduce lazaret.ListQuery.Match exactly: every lower-casing is
// done in Go (strings.ToLower) on both the stored columns (from_lower,
// from_domain, rcpt_lower, rcpt_domains, subject_lower) and the query, and
// SQL only compares for equality, array containment, or substring (LIKE with
// escaped wildcards, served by a pg_trgm index). The subject_tsv column
// (to_tsvector('simple', subject), GIN indexed) is for SQL users' word
// search; it cannot express Match's substring rule, so List does not use
// it. Text PostgreSQL cannot store (NUL bytes, invalid UTF-8) is stored with
// NUL removed and invalid bytes replaced by U+FFFD, so searches on such
// subjects may differ from the local index.
package index
