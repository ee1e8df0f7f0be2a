package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
)

var _ index.Sink = (*DB)(nil)

// rowColumns are the messages columns Apply writes, in COPY order; hostname
// comes from lazaret_nodes and subject_tsv is generated.
var rowColumns = []string{
	"messageid", "timestamp", "date", "from_address", "from_domain", "to_address", "to_domain",
	"subject", "size", "clientip", "sascore", "spam", "highspam", "virusinfected", "isquarantined",
	"spamreport", "received_ns", "recipients", "rcpt_lower", "rcpt_domains", "from_lower",
	"subject_lower", "helo", "header_from", "header_to", "header_date", "header_message_id",
	"sha256", "verdict", "scanner", "state", "learned_as", "history", "origin_node",
	"version_wall", "version_logical", "version_node", "meta",
}

// stageDDL creates the session's staging table for COPY, with the types
// (and collations) of the columns Apply writes but none of their
// constraints; its rows vanish at commit.
var stageDDL = "CREATE TEMP TABLE IF NOT EXISTS lazaret_stage ON COMMIT DELETE ROWS AS SELECT " +
	quoteAll(rowColumns) + " FROM messages WITH NO DATA"

// stateRank orders states as lazaret.Merge does: a further state wins over
// any version of an earlier one (quarantined < released < deleted).
func stateRank(table string) string {
	return fmt.Sprintf("(CASE %s.state WHEN 'deleted' THEN 2 WHEN 'released' THEN 1 ELSE 0 END)", table)
}

// upsertSQL moves staged rows into messages. A row replaces an existing one
// only if it wins by lazaret.Merge's rule — the further state, then the
// newer version — so replays and concurrent feeders never regress a row,
// and a delete whose version is older than a concurrent learn's (another
// node's clock ran ahead) still ends as deleted, as in the store; of
// several staged rows for one id the winner is taken.
var upsertSQL = func() string {
	var sel, set []string
	for _, c := range rowColumns {
		sel = append(sel, "s."+quote(c))
		if c != "messageid" {
			set = append(set, quote(c)+" = excluded."+quote(c))
		}
	}
	set = append(set, "hostname = excluded.hostname", "indexed_at = now()")
	return fmt.Sprintf(`INSERT INTO messages (%s, hostname)
SELECT DISTINCT ON (s.messageid) %s, COALESCE(n.hostname, 'node' || s.origin_node)
FROM lazaret_stage s LEFT JOIN lazaret_nodes n ON n.node = s.origin_node
ORDER BY s.messageid, %s DESC, s.version_wall DESC, s.version_logical DESC, s.version_node DESC
ON CONFLICT (messageid) DO UPDATE SET %s
WHERE (%s, excluded.version_wall, excluded.version_logical, excluded.version_node)
    > (%s, messages.version_wall, messages.version_logical, messages.version_node)`,
		quoteAll(rowColumns), strings.Join(sel, ", "), stateRank("s"), strings.Join(set, ", "), stateRank("excluded"), stateRank("messages"))
}()

func quote(c string) string { return pgx.Identifier{c}.Sanitize() }

func quoteAll(cs []string) string {
	q := make([]string, len(cs))
	for i, c := range cs {
		q[i] = quote(c)
	}
	return strings.Join(q, ", ")
}

// Register records node's hostname in lazaret_nodes (updating the hostname
// of its rows if it changed) after Init, and reports whether the node was
// known before.
func (db *DB) Register(ctx context.Context, node int, hostname string) (bool, error) {
	if err := db.Init(ctx); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.QueryTimeout)
	defer cancel()
	hostname = clean(hostname)
	known := false
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var old string
		err := tx.QueryRow(ctx, "SELECT hostname FROM lazaret_nodes WHERE node = $1 FOR UPDATE", node).Scan(&old)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Rows other nodes wrote for this node's messages carry a
			// placeholder hostname until now.
			_, err = tx.Exec(ctx, "INSERT INTO lazaret_nodes (node, hostname) VALUES ($1, $2) ON CONFLICT (node) DO NOTHING", node, hostname)
		case err != nil:
			return err
		default:
			known = true
			if old == hostname {
				return nil
			}
			_, err = tx.Exec(ctx, "UPDATE lazaret_nodes SET hostname = $2, updated_at = now() WHERE node = $1", node, hostname)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE messages SET hostname = $2 WHERE origin_node = $1 AND hostname <> $2", node, hostname)
		return err
	})
	if err != nil {
		return false, db.wrap("register node", err)
	}
	return known, nil
}

// Apply writes changes in one transaction: removals first, then upserts
// staged with COPY. Ids are sorted so that concurrent feeders lock rows in
// the same order.
func (db *DB) Apply(ctx context.Context, changes []index.Change) error {
	if len(changes) == 0 {
		return nil
	}
	if err := db.Init(ctx); err != nil {
		return err
	}
	var del []string
	var rows [][]any
	for _, c := range changes {
		if c.Meta == nil {
			del = append(del, string(c.ID))
			continue
		}
		r, err := row(c.Meta)
		if err != nil {
			return &lazaret.Error{Op: "postgres apply", ID: c.ID, Err: err}
		}
		rows = append(rows, r)
	}
	sort.Strings(del)
	sort.Slice(rows, func(i, j int) bool { return rows[i][0].(string) < rows[j][0].(string) })
	ctx, cancel := context.WithTimeout(ctx, db.cfg.QueryTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if len(del) > 0 {
			if _, err := tx.Exec(ctx, "DELETE FROM messages WHERE messageid = ANY($1::text[])", del); err != nil {
				return err
			}
		}
		if len(rows) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, stageDDL); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"lazaret_stage"}, rowColumns, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, upsertSQL)
		return err
	})
	if err != nil {
		return db.wrap("apply", err)
	}
	return nil
}

// Prune deletes rows of messages received before before.
func (db *DB) Prune(ctx context.Context, before time.Time) error {
	if err := db.Init(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.QueryTimeout)
	defer cancel()
	_, err := db.pool.Exec(ctx, "DELETE FROM messages WHERE received_ns < $1", before.UnixNano())
	return db.wrap("prune", err)
}

// Truncate empties the messages table (for `lazaret index rebuild
// --truncate`).
func (db *DB) Truncate(ctx context.Context) error {
	if err := db.Init(ctx); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, "TRUNCATE messages")
	return db.wrap("truncate", err)
}

// row converts m to the values of rowColumns.
func row(m *lazaret.Metadata) ([]any, error) {
	meta, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	hist := m.History
	if hist == nil {
		hist = []lazaret.Event{}
	}
	history, err := json.Marshal(hist)
	if err != nil {
		return nil, err
	}
	// jsonb cannot hold U+0000; json (the meta column) can.
	history = []byte(strings.ReplaceAll(string(history), `\u0000`, `\ufffd`))

	rcpts := make([]string, len(m.Recipients))
	lower := make([]string, len(m.Recipients))
	domains := []string{}
	var toDomains []string
	seen := map[string]bool{}
	for i, r := range m.Recipients {
		rcpts[i] = clean(r)
		lower[i] = clean(strings.ToLower(r))
		if d, ok := domainOf(r); ok {
			d = clean(d)
			domains = append(domains, d)
			if !seen[d] {
				seen[d] = true
				toDomains = append(toDomains, d)
			}
		}
	}
	var fromDomain *string
	if d, ok := domainOf(m.Sender); ok {
		d = clean(d)
		fromDomain = &d
	}
	var headerDate *time.Time
	if y := m.Date.Year(); !m.Date.IsZero() && y >= 1 && y <= 9999 {
		headerDate = &m.Date
	}
	recv := m.Received.UTC()
	k := m.Verdict.Kind
	return []any{
		string(m.ID), recv, time.Date(recv.Year(), recv.Month(), recv.Day(), 0, 0, 0, 0, time.UTC),
		clean(m.Sender), fromDomain, strings.Join(rcpts, ","), strings.Join(toDomains, ","),
		clean(m.Subject), m.Size, clean(m.ClientIP), m.Verdict.Score,
		k == lazaret.VerdictSpam || k == lazaret.VerdictHighSpam, k == lazaret.VerdictHighSpam, k == lazaret.VerdictVirus,
		m.State != lazaret.StateDeleted, clean(m.Verdict.Report),
		m.Received.UnixNano(), rcpts, lower, domains, clean(strings.ToLower(m.Sender)),
		clean(strings.ToLower(m.Subject)), clean(m.Helo), clean(m.From), clean(m.To), headerDate, clean(m.MessageID),
		hex.EncodeToString(m.SHA256[:]), k.String(), clean(m.Verdict.Scanner), m.State.String(), m.LearnedAs.String(),
		string(history), m.Node, m.Version.Wall, int64(m.Version.Logical), m.Version.Node, string(meta),
	}, nil
}

// domainOf returns the lower-cased domain of addr (after its last "@"), as
// lazaret.ListQuery.Match defines it.
func domainOf(addr string) (string, bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", false
	}
	return strings.ToLower(addr[i+1:]), true
}

// clean makes s storable as PostgreSQL text: NUL bytes removed, invalid
// UTF-8 replaced by U+FFFD.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
