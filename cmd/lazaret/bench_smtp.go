package main

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/lazaret/lazaret"
)

var quarantinedAs = regexp.MustCompile(`quarantined as (\S+)`)

// benchSMTP sends bodies through the SMTP filter at addr from conc
// connections, one message after another on each (MAIL, RCPT, DATA), and
// times each message from MAIL to the 250 that names its quarantine id. The
// ids are returned so the caller can delete the messages.
func benchSMTP(addr string, bodies [][]byte, conc int, report progressFunc) (benchResult, []lazaret.ID, error) {
	ids := make([]lazaret.ID, len(bodies))
	clients := make(chan *smtp.Client, conc)
	var mu sync.Mutex
	var all []*smtp.Client
	dial := func() (*smtp.Client, error) {
		select {
		case c := <-clients:
			return c, nil
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return nil, err
		}
		c := smtp.NewClient(conn)
		c.CommandTimeout, c.SubmissionTimeout = time.Minute, 5*time.Minute
		if err := c.Hello("bench.lazaret.test"); err != nil {
			c.Close()
			return nil, err
		}
		mu.Lock()
		all = append(all, c)
		mu.Unlock()
		return c, nil
	}
	defer func() {
		for _, c := range all {
			c.Quit()
			c.Close()
		}
	}()
	res, err := runParallel("smtp ingest", len(bodies), conc, func(i int) int { return len(bodies[i]) }, report, func(i int) error {
		c, err := dial()
		if err != nil {
			return err
		}
		if err := c.Mail("bench@example.org", nil); err != nil {
			return err
		}
		if err := c.Rcpt("user@example.com", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(bodies[i]); err != nil {
			return err
		}
		resp, err := w.CloseWithResponse()
		if err != nil {
			return err
		}
		m := quarantinedAs.FindStringSubmatch(resp.StatusText)
		if m == nil {
			return fmt.Errorf("reply %q names no quarantine id", resp.StatusText)
		}
		ids[i] = lazaret.ID(m[1])
		clients <- c
		return nil
	})
	return res, ids, err
}

// smtpBody returns a bench body with a spam verdict header, so the filter
// parses a realistic header; the size mix is unchanged within a few bytes.
func smtpBody(b []byte) []byte {
	return append([]byte("X-Spam-Status: Yes, score=9.0 required=5.0 tests=BENCH\r\n"), bytes.Clone(b)...)
}
