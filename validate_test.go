package lazaret_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

func TestPutRequestValidateRefuses(t *testing.T) {
	for name, req := range map[string]lazaret.PutRequest{
		"NaN score":          {Verdict: lazaret.Verdict{Score: math.NaN()}},
		"+Inf score":         {Verdict: lazaret.Verdict{Score: math.Inf(1)}},
		"-Inf score":         {Verdict: lazaret.Verdict{Score: math.Inf(-1)}},
		"unknown verdict":    {Verdict: lazaret.Verdict{Kind: 5}},
		"negative verdict":   {Verdict: lazaret.Verdict{Kind: -1}},
		"scanner control":    {Verdict: lazaret.Verdict{Scanner: "sa\x00"}},
		"long scanner":       {Verdict: lazaret.Verdict{Scanner: strings.Repeat("s", lazaret.MaxScannerBytes+1)}},
		"long report":        {Verdict: lazaret.Verdict{Report: strings.Repeat("r", lazaret.MaxReportBytes+1)}},
		"report not UTF-8":   {Verdict: lazaret.Verdict{Report: "\xff"}},
		"client IP octet":    {ClientIP: "999.1.2.3"},
		"client IP name":     {ClientIP: "mx.example.org"},
		"client IP CIDR":     {ClientIP: "192.0.2.0/24"},
		"helo CRLF":          {Helo: "mx\r\nRCPT TO:<x>"},
		"long helo":          {Helo: strings.Repeat("h", lazaret.MaxHeloBytes+1)},
		"sender space":       {Sender: "a b@example.org"},
		"recipient empty":    {Recipients: []string{""}},
		"recipient brackets": {Recipients: []string{"<a>b@example.org"}},
		"received year":      {Received: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"date year":          {Date: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		err := req.Validate()
		if !errors.Is(err, lazaret.ErrInvalidArgument) {
			t.Errorf("%s: Validate = %v, want ErrInvalidArgument", name, err)
		}
	}
	bad := lazaret.PutRequest{ID: "x/y"}
	if err := bad.Validate(); !errors.Is(err, lazaret.ErrInvalidID) {
		t.Errorf("bad id: Validate = %v, want ErrInvalidID", err)
	}
}

func TestPutRequestValidateNormalises(t *testing.T) {
	req := lazaret.PutRequest{
		Sender:     " <a@example.org> ",
		ClientIP:   "::ffff:192.0.2.7",
		Helo:       "[192.0.2.7]",
		Verdict:    lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: math.Copysign(0, -1)},
		Recipients: nil,
	}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	if req.Sender != "a@example.org" || req.ClientIP != "192.0.2.7" || math.Signbit(req.Verdict.Score) {
		t.Errorf("normalised to %+v", req)
	}
	if req.Recipients == nil || len(req.Recipients) != 0 {
		t.Errorf("Recipients = %#v, want empty and not nil", req.Recipients)
	}
	for in, want := range map[string]string{
		"[192.0.2.1]":           "192.0.2.1",
		"[IPv6:2001:DB8::1]":    "2001:db8::1",
		"2001:0db8:0:0:0:0:0:1": "2001:db8::1",
	} {
		r := lazaret.PutRequest{ClientIP: in}
		if err := r.Validate(); err != nil || r.ClientIP != want {
			t.Errorf("client IP %q: %q, %v; want %q", in, r.ClientIP, err, want)
		}
	}
	// A valid score anywhere in float64's finite range is kept (whitelist
	// rules give -100 and below).
	r := lazaret.PutRequest{Verdict: lazaret.Verdict{Score: -1000.5}}
	if err := r.Validate(); err != nil || r.Verdict.Score != -1000.5 {
		t.Errorf("score -1000.5: %v, %v", r.Verdict.Score, err)
	}
}

// A message without recipients is listed with an empty list, never null.
func TestMetadataJSONEmptyRecipients(t *testing.T) {
	b, err := json.Marshal(lazaret.Metadata{ID: "1xVCn8-000000-01"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"recipients":[]`) {
		t.Errorf("JSON %s lacks \"recipients\":[]", b)
	}
}
