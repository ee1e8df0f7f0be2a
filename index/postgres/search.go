package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lazaret/lazaret"
)

// Source is the ListPage.Source of pages Search returns.
const Source = "postgres"

// Search answers a List query from the index: the messages matching q (see
// lazaret.ListQuery.Match, which it reproduces exactly), newest received
// first, ties broken by id descending, a page at a time. Cursors have the
// same format as the local index's (objstore), so paging may move between
// the two sources.
func (db *DB) Search(ctx context.Context, q lazaret.ListQuery) (*lazaret.ListPage, error) {
	const op = "postgres search"
	if err := q.Normalize(); err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	sql, args, err := searchSQL(q)
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	if err := db.Init(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.QueryTimeout)
	defer cancel()
	// Unnamed statements, planned for each query's own parameters: a cached
	// generic plan cannot use the trigram index for a LIKE parameter.
	rows, err := db.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, db.wrap("search", err)
	}
	metas, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*lazaret.Metadata, error) {
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			return nil, err
		}
		m := new(lazaret.Metadata)
		if err := json.Unmarshal(raw, m); err != nil {
			return nil, fmt.Errorf("decoding meta: %w", err)
		}
		return m, nil
	})
	if err != nil {
		return nil, db.wrap("search", err)
	}
	if len(metas) == 0 {
		metas = nil // as the local index answers
	}
	page := &lazaret.ListPage{Source: Source, Messages: metas}
	if len(metas) > q.Limit {
		page.Messages = metas[:q.Limit]
		last := page.Messages[q.Limit-1]
		page.NextCursor = EncodeCursor(last.Received, last.ID)
	}
	return page, nil
}

// searchSQL builds the query for a normalized q. Every lower-casing happens
// here, in Go, as on the stored columns, so that SQL only tests equality,
// containment and substrings.
func searchSQL(q lazaret.ListQuery) (string, []any, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !q.Since.IsZero() {
		where = append(where, "received_ns >= "+arg(q.Since.UnixNano()))
	}
	if !q.Until.IsZero() {
		where = append(where, "received_ns < "+arg(q.Until.UnixNano()))
	}
	if q.Cursor != "" {
		t, id, err := DecodeCursor(q.Cursor)
		if err != nil {
			return "", nil, err
		}
		where = append(where, fmt.Sprintf("(received_ns, messageid) < (%s, %s)", arg(t.UnixNano()), arg(string(id))))
	}
	states := q.States
	if len(states) == 0 {
		states = []lazaret.State{lazaret.StateQuarantined, lazaret.StateReleased}
	}
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = s.String()
	}
	where = append(where, "state = ANY("+arg(names)+"::text[])")
	if q.Node != nil {
		where = append(where, "origin_node = "+arg(*q.Node))
	}
	if len(q.Verdicts) > 0 {
		names := make([]string, len(q.Verdicts))
		for i, v := range q.Verdicts {
			names[i] = v.String()
		}
		where = append(where, "verdict = ANY("+arg(names)+"::text[])")
	}
	if q.MinScore != nil {
		where = append(where, "sascore >= "+arg(*q.MinScore)+"::double precision")
	}
	if q.MaxScore != nil {
		where = append(where, "sascore <= "+arg(*q.MaxScore)+"::double precision")
	}
	if q.Sender != "" {
		if d, ok := strings.CutPrefix(q.Sender, "@"); ok {
			where = append(where, "from_domain = "+arg(strings.ToLower(d)))
		} else {
			where = append(where, "from_lower = "+arg(strings.ToLower(q.Sender)))
		}
	}
	if q.Recipient != "" {
		if d, ok := strings.CutPrefix(q.Recipient, "@"); ok {
			where = append(where, "rcpt_domains @> ARRAY["+arg(strings.ToLower(d))+"::text]")
		} else {
			where = append(where, "rcpt_lower @> ARRAY["+arg(strings.ToLower(q.Recipient))+"::text]")
		}
	}
	if d := strings.ToLower(strings.TrimPrefix(q.Domain, "@")); d != "" {
		p := arg(d)
		where = append(where, fmt.Sprintf("(from_domain = %s OR rcpt_domains @> ARRAY[%s::text])", p, p))
	}
	for _, w := range strings.Fields(q.Subject) {
		where = append(where, `subject_lower LIKE `+arg("%"+escapeLike(strings.ToLower(w))+"%")+` ESCAPE '\'`)
	}
	sql := "SELECT meta FROM messages WHERE " + strings.Join(where, " AND ") +
		" ORDER BY received_ns DESC, messageid DESC LIMIT " + arg(q.Limit+1)
	return sql, args, nil
}

// escapeLike quotes LIKE's wildcards and its escape character.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// cursorVersion is the first byte of a decoded cursor, as in objstore.
const cursorVersion = 1

// EncodeCursor returns the List cursor that continues after the message
// received at t with id id. The format is objstore's: URL-safe unpadded
// base64 of version(1)=1, the Unix nanoseconds of t with the sign bit
// flipped (8 bytes, big-endian), and the id.
func EncodeCursor(t time.Time, id lazaret.ID) string {
	b := []byte{cursorVersion}
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63))
	b = append(b, id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor from EncodeCursor or the local index.
func DecodeCursor(c string) (time.Time, lazaret.ID, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 1+8+1 || len(b) > 1+8+128 || b[0] != cursorVersion || strings.IndexByte(string(b[9:]), 0) >= 0 {
		return time.Time{}, "", fmt.Errorf("%w: malformed list cursor", lazaret.ErrInvalidArgument)
	}
	t := time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])^(1<<63)))
	return t, lazaret.ID(b[9:]), nil
}
