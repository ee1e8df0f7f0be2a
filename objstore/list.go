package objstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// listSource is the ListPage.Source of pages from the store.
const listSource = "local"

// cursorVersion is the first byte of a decoded List cursor.
const cursorVersion = 1

// List returns metadata matching q (see lazaret.ListQuery.Match), newest
// received first, ties broken by id descending. It walks the time index
// backwards from Until (or the cursor), stops at Since, and reads only the
// metadata of entries whose state q selects. A page is taken from one
// consistent snapshot; NextCursor is set only if another match exists, so
// the last page never comes back empty. The cursor is opaque URL-safe
// base64 (the position of the last message returned); a malformed one is
// an error wrapping lazaret.ErrInvalidArgument. Pages are labelled Source
// "local".
func (s *Store) List(ctx context.Context, q lazaret.ListQuery) (*lazaret.ListPage, error) {
	const op = "objstore.list"
	if err := q.Normalize(); err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	start := prefixLimit(nsTime)
	if !q.Until.IsZero() {
		start = encTime(prefix(nsTime), q.Until)
	}
	var after []byte // exclusive: the last key of the previous page
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, &lazaret.Error{Op: op, Err: err}
		}
		if bytes.Compare(c, start) < 0 {
			start, after = c, c
		}
	}
	var low []byte // inclusive lower bound
	if !q.Since.IsZero() {
		low = encTime(prefix(nsTime), q.Since)
	}
	states := q.States
	if len(states) == 0 {
		states = []lazaret.State{lazaret.StateQuarantined, lazaret.StateReleased}
	}
	wantState := func(st lazaret.State) bool {
		for _, x := range states {
			if x == st {
				return true
			}
		}
		return false
	}

	leave, err := s.enter()
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	page := &lazaret.ListPage{Source: listSource}
	var lastKey []byte
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			Prefix: prefix(nsTime), Reverse: true, PrefetchValues: true, PrefetchSize: 64,
		})
		defer it.Close()
		scanned := 0
		for it.Seek(start); it.Valid(); it.Next() {
			if scanned++; scanned%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			k := item.Key()
			if low != nil && bytes.Compare(k, low) < 0 {
				break
			}
			if after != nil && bytes.Equal(k, after) {
				continue
			}
			t, id, ok := splitTimeKey(k)
			if !ok {
				return fmt.Errorf("bad time index key %q: %w", k, lazaret.ErrCorrupt)
			}
			var state lazaret.State
			err := item.Value(func(v []byte) (err error) {
				state, _, err = decodeTimeValue(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("time index %s: %w", id, err)
			}
			if !wantState(state) {
				continue
			}
			m, err := getMeta(txn, id)
			if err != nil {
				return fmt.Errorf("message %s: %w", id, err)
			}
			if m == nil || !m.Received.Equal(t) || !q.Match(m) {
				continue
			}
			if len(page.Messages) == q.Limit {
				// Another match exists: the page is full and continues.
				page.NextCursor = encodeCursor(lastKey)
				return nil
			}
			page.Messages = append(page.Messages, m)
			lastKey = item.KeyCopy(lastKey[:0])
		}
		return nil
	})
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	return page, nil
}

func encodeCursor(timeKey []byte) string {
	b := append([]byte{cursorVersion}, timeKey[2:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the time-index key a cursor names.
func decodeCursor(c string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 1+8+1 || b[0] != cursorVersion {
		return nil, fmt.Errorf("%w: malformed list cursor", lazaret.ErrInvalidArgument)
	}
	k := append(prefix(nsTime), b[1:]...)
	if _, id, _ := splitTimeKey(k); checkID("", id) != nil {
		return nil, fmt.Errorf("%w: malformed list cursor", lazaret.ErrInvalidArgument)
	}
	return k, nil
}
