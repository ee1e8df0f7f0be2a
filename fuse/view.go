package fuse

import (
	"context"
	"errors"
	"io"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret"
)

// overlayTTL is how long this view remembers its own puts and deletes on
// top of listings, so an index that lags (PostgreSQL) never brings back
// a message deleted here or hides one just written.
const overlayTTL = time.Minute

// entry is what a listing says about one message: enough for stat and
// readdir, never the body.
type entry struct {
	ID       lazaret.ID
	Size     int64
	Received time.Time
	Place    Place
	SHA256   [32]byte
	Day      string
}

// dayList is the cached listing of one day.
type dayList struct {
	mu   sync.Mutex // one refresh at a time
	at   time.Time  // when fetched; zero = never
	byID map[lazaret.ID]*entry
}

// view is the tree's state over the store: cached day listings, the
// directories made with mkdir, and this view's own recent changes.
// It has no FUSE types, so the dir and file nodes stay thin.
type view struct {
	q   lazaret.Quarantine
	cfg Config
	log logger

	mu       sync.Mutex
	dayLists map[string]*dayList
	rootAt   time.Time
	rootDays []string
	made     map[string]bool // "D", "D/spam", "D/<id>" made by mkdir
	deleted  map[lazaret.ID]time.Time
	added    map[lazaret.ID]*entry
	addedAt  map[lazaret.ID]time.Time
}

type logger interface {
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

func newView(q lazaret.Quarantine, cfg Config) *view {
	return &view{
		q: q, cfg: cfg, log: cfg.Log,
		dayLists: map[string]*dayList{}, made: map[string]bool{},
		deleted: map[lazaret.ID]time.Time{}, added: map[lazaret.ID]*entry{}, addedAt: map[lazaret.ID]time.Time{},
	}
}

func (v *view) now() time.Time { return v.cfg.Clock.Now() }

// op bounds one store call by OpTimeout. A signal to the caller (the Go
// runtime's preemption signals included) interrupts the FUSE request but
// not the call: a put that started finishes and close reports it, and a
// fetched body or listing serves the retry.
func (v *view) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), v.cfg.OpTimeout)
}

// dayName is the day directory of t.
func (v *view) dayName(t time.Time) string { return t.In(v.cfg.Location).Format("20060102") }

// parseDay returns the start and end of a day directory's name, or false
// when the name is not an existing YYYYMMDD date.
func (v *view) parseDay(name string) (start, end time.Time, ok bool) {
	if len(name) != 8 || strings.Trim(name, "0123456789") != "" {
		return
	}
	t, err := time.ParseInLocation("20060102", name, v.cfg.Location)
	if err != nil || t.Format("20060102") != name {
		return
	}
	return t, t.AddDate(0, 0, 1), true
}

func (v *view) entryOf(m *lazaret.Metadata) *entry {
	return &entry{ID: m.ID, Size: m.Size, Received: m.Received, Place: v.cfg.Places[m.Verdict.Kind], SHA256: m.SHA256, Day: v.dayName(m.Received)}
}

// expireOverlay forgets overlay records older than overlayTTL; v.mu held.
func (v *view) expireOverlay() {
	cut := v.now().Add(-overlayTTL)
	for id, t := range v.deleted {
		if t.Before(cut) {
			delete(v.deleted, id)
		}
	}
	for id, t := range v.addedAt {
		if t.Before(cut) {
			delete(v.added, id)
			delete(v.addedAt, id)
		}
	}
}

// dayList returns the cache record of a day, made on first use.
func (v *view) dayList(day string) *dayList {
	v.mu.Lock()
	defer v.mu.Unlock()
	dl := v.dayLists[day]
	if dl == nil {
		dl = &dayList{}
		v.dayLists[day] = dl
	}
	return dl
}

// refresh fetches a day's listing again unless it is younger than ListTTL
// (one fetch at a time per day; others wait for it).
func (v *view) refresh(ctx context.Context, day string, dl *dayList) error {
	start, end, ok := v.parseDay(day)
	if !ok {
		return lazaret.ErrNotFound
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	v.mu.Lock()
	fresh := !dl.at.IsZero() && v.now().Sub(dl.at) < v.cfg.ListTTL
	v.mu.Unlock()
	if fresh {
		return nil
	}
	fetched := v.now()
	byID, err := v.fetchDay(ctx, start, end)
	if err != nil {
		return err
	}
	v.mu.Lock()
	dl.byID, dl.at = byID, fetched
	v.mu.Unlock()
	return nil
}

// day returns the entries of a day directory, from a listing no older
// than ListTTL, with this view's own changes applied (for readdir).
func (v *view) day(ctx context.Context, day string) (map[lazaret.ID]*entry, error) {
	dl := v.dayList(day)
	if err := v.refresh(ctx, day, dl); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.expireOverlay()
	out := make(map[lazaret.ID]*entry, len(dl.byID))
	for id, e := range dl.byID {
		if _, gone := v.deleted[id]; !gone {
			out[id] = e
		}
	}
	for id, e := range v.added {
		if _, gone := v.deleted[id]; e.Day == day && !gone {
			out[id] = e
		}
	}
	return out, nil
}

// find looks id up in a day's listing and this view's changes, in
// constant time (lookups come once per entry of a readdir). A listing
// older than ListTTL is still used while a fresh one is fetched in the
// background (stale-while-revalidate): a message deleted elsewhere can
// be found for one more ListTTL; a miss is checked with Stat by message.
func (v *view) find(ctx context.Context, day string, id lazaret.ID) (*entry, error) {
	dl := v.dayList(day)
	v.mu.Lock()
	at := dl.at
	v.mu.Unlock()
	switch {
	case at.IsZero():
		if err := v.refresh(ctx, day, dl); err != nil {
			return nil, err
		}
	case v.now().Sub(at) >= v.cfg.ListTTL && dl.mu.TryLock():
		dl.mu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), v.cfg.OpTimeout)
			defer cancel()
			if err := v.refresh(ctx, day, dl); err != nil {
				v.log.Warn("fuse: refreshing a day listing failed", "day", day, "err", err)
			}
		}()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, gone := v.deleted[id]; gone {
		return nil, nil
	}
	if e := v.added[id]; e != nil && e.Day == day {
		return e, nil
	}
	return dl.byID[id], nil
}

// hasPlace reports whether a day holds a message shown in place.
func (v *view) hasPlace(ctx context.Context, day string, place Place) (bool, error) {
	entries, err := v.day(ctx, day)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Place == place {
			return true, nil
		}
	}
	return false, nil
}

// fetchDay lists the quarantined messages received in [start, end),
// metadata only, every page.
func (v *view) fetchDay(ctx context.Context, start, end time.Time) (map[lazaret.ID]*entry, error) {
	out := map[lazaret.ID]*entry{}
	if v.beforeWindow(end) {
		return out, nil // past retention: nothing can be there
	}
	ctx, cancel := v.op(ctx)
	defer cancel()
	q := lazaret.ListQuery{Since: start, Until: end, States: []lazaret.State{lazaret.StateQuarantined}, Limit: lazaret.MaxListLimit}
	for {
		page, err := v.q.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			out[m.ID] = v.entryOf(m)
		}
		if page.NextCursor == "" {
			return out, nil
		}
		q.Cursor = page.NextCursor
	}
}

// beforeWindow says a day ending at end is older than the listed window,
// so past the node's retention.
func (v *view) beforeWindow(end time.Time) bool {
	return end.Before(v.now().AddDate(0, 0, -v.cfg.Days-1))
}

// days lists the day directories: every day within the window that holds a
// message, plus days made with mkdir. One cheap query per day (a page of
// one) unless the day's listing is cached.
func (v *view) days(ctx context.Context) ([]string, error) {
	v.mu.Lock()
	if !v.rootAt.IsZero() && v.now().Sub(v.rootAt) < v.cfg.ListTTL {
		out := v.withMadeDays(v.rootDays)
		v.mu.Unlock()
		return out, nil
	}
	v.mu.Unlock()
	fetched := v.now()
	today, _, _ := v.parseDay(v.dayName(fetched))
	var found []string
	for i := 0; i <= v.cfg.Days; i++ {
		start := today.AddDate(0, 0, -i)
		name := start.Format("20060102")
		has, err := v.dayHasMessages(ctx, name, start, start.AddDate(0, 0, 1))
		if err != nil {
			return nil, err
		}
		if has {
			found = append(found, name)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.expireOverlay()
	for _, e := range v.added {
		if _, gone := v.deleted[e.ID]; !gone && !slices.Contains(found, e.Day) {
			found = append(found, e.Day)
		}
	}
	v.rootDays, v.rootAt = found, fetched
	return v.withMadeDays(found), nil
}

func (v *view) withMadeDays(days []string) []string {
	out := slices.Clone(days)
	for p := range v.made {
		if !strings.Contains(p, "/") && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (v *view) dayHasMessages(ctx context.Context, day string, start, end time.Time) (bool, error) {
	v.mu.Lock()
	dl := v.dayLists[day]
	if dl != nil && !dl.at.IsZero() && v.now().Sub(dl.at) < v.cfg.ListTTL {
		n := 0
		for id := range dl.byID {
			if _, gone := v.deleted[id]; !gone {
				n++
			}
		}
		v.mu.Unlock()
		return n > 0, nil
	}
	v.mu.Unlock()
	if v.beforeWindow(end) {
		return false, nil
	}
	ctx, cancel := v.op(ctx)
	defer cancel()
	page, err := v.q.List(ctx, lazaret.ListQuery{Since: start, Until: end, States: []lazaret.State{lazaret.StateQuarantined}, Limit: 2})
	if err != nil {
		return false, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range page.Messages {
		if _, gone := v.deleted[m.ID]; !gone {
			return true, nil
		}
	}
	return false, nil
}

// message finds id in a day at a place: from the day's listing, else by
// Stat (a message that arrived since the listing was fetched).
func (v *view) message(ctx context.Context, day string, place Place, id lazaret.ID) (*entry, error) {
	if _, _, ok := v.parseDay(day); !ok {
		return nil, lazaret.ErrNotFound
	}
	e, err := v.find(ctx, day, id)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if e.Place != place {
			return nil, lazaret.ErrNotFound
		}
		return e, nil
	}
	sctx, cancel := v.op(ctx)
	defer cancel()
	m, err := v.q.Stat(sctx, id)
	if err != nil {
		return nil, err
	}
	e = v.entryOf(m)
	v.mu.Lock()
	_, gone := v.deleted[id]
	v.mu.Unlock()
	if m.State != lazaret.StateQuarantined || e.Day != day || e.Place != place || gone {
		return nil, lazaret.ErrNotFound
	}
	return e, nil
}

// remove deletes a message in the store and hides it at once.
func (v *view) remove(ctx context.Context, id lazaret.ID) error {
	ctx, cancel := v.op(ctx)
	defer cancel()
	_, err := v.q.Delete(ctx, id, v.cfg.Actor)
	if err != nil && !errors.Is(err, lazaret.ErrNotFound) {
		return err
	}
	v.mu.Lock()
	v.deleted[id] = v.now()
	delete(v.added, id)
	delete(v.addedAt, id)
	v.rootAt = time.Time{}
	v.mu.Unlock()
	return err
}

// put quarantines a written file. The id is the name's when it is a valid
// id not in use; otherwise one is allocated.
func (v *view) put(ctx context.Context, id lazaret.ID, place Place, body *spool) (*entry, error) {
	ctx, cancel := v.op(ctx)
	defer cancel()
	req := lazaret.PutRequest{ID: id, Verdict: lazaret.Verdict{Kind: v.cfg.Verdicts[place], Scanner: "fuse"}, Actor: v.cfg.Actor}
	req.Sender, req.Recipients = envelopeFromHeader(body)
	m, err := v.q.Put(ctx, req, body.Reader())
	if err != nil && id != "" && errors.Is(err, lazaret.ErrConflict) {
		req.ID = ""
		m, err = v.q.Put(ctx, req, body.Reader())
	}
	if err != nil {
		return nil, err
	}
	e := v.entryOf(m)
	v.mu.Lock()
	v.added[m.ID], v.addedAt[m.ID] = e, v.now()
	delete(v.deleted, m.ID)
	v.rootAt = time.Time{}
	v.mu.Unlock()
	return e, nil
}

// envelopeFromHeader guesses the envelope of a file written into the tree,
// which carries none: Return-Path (else From) as the sender, To and Cc as
// recipients, so that a later release has somewhere to go.
func envelopeFromHeader(body *spool) (string, []string) {
	msg, err := mail.ReadMessage(io.LimitReader(body.Reader(), 256<<10))
	if err != nil {
		return "", nil
	}
	var sender string
	if rp := strings.Trim(strings.TrimSpace(msg.Header.Get("Return-Path")), "<>"); rp != "" && !strings.ContainsAny(rp, " \t<>") {
		sender = rp
	} else if a, err := mail.ParseAddress(msg.Header.Get("From")); err == nil {
		sender = a.Address
	}
	var rcpts []string
	for _, h := range []string{"To", "Cc"} {
		if l, err := msg.Header.AddressList(h); err == nil {
			for _, a := range l {
				rcpts = append(rcpts, a.Address)
			}
		}
	}
	return sender, rcpts
}

// mkdir records a directory made by a tool; false if it already existed.
func (v *view) mkdir(path string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.made[path] {
		return false
	}
	v.made[path] = true
	return true
}

func (v *view) isMade(path string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.made[path]
}

// madeUnder lists the names made directly under path.
func (v *view) madeUnder(path string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for p := range v.made {
		if rest, ok := strings.CutPrefix(p, path+"/"); ok && !strings.Contains(rest, "/") {
			out = append(out, rest)
		}
	}
	return out
}

func (v *view) unmake(path string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.made, path)
}
