package lazaret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrDeliveryFailed: the next hop refused or failed to take a released
// message. The message stays quarantined; the error text carries the relay's
// reply. Errors that also match [ErrUnavailable] are temporary.
var ErrDeliveryFailed = errors.New("delivery failed")

// Deliverer hands a released message to the next hop (an MTA relay) by SMTP.
// Implementations deliver all recipients or none: if the relay refuses any
// recipient, the transaction is abandoned before the message data is sent.
// If body fails while it is being read (for example with [ErrCorrupt]), the
// transaction is abandoned without ending the data, so the relay discards it.
type Deliverer interface {
	// Deliver sends body from sender (the null sender when empty) to
	// recipients and returns the relay's final reply, which usually names
	// its queue id ("250 2.0.0 Ok: queued as 4Zx1y2"). Failures are
	// *DeliveryError values.
	Deliver(ctx context.Context, sender string, recipients []string, body io.Reader) (reply string, err error)
}

// RecipientError is the relay's refusal of one recipient.
type RecipientError struct {
	Recipient string `json:"recipient"`
	Reply     string `json:"reply"` // e.g. "550 5.1.1 <x@example.com>: user unknown"
}

// DeliveryError describes a failed delivery. It matches [ErrDeliveryFailed]
// and, when Temporary, [ErrUnavailable].
type DeliveryError struct {
	Relay string // the next hop's address
	Stage string // "connect", "hello", "starttls", "mail", "rcpt", "data", "end of data"
	// Reply is the relay's reply to the failed command, when it gave one.
	Reply string
	// Recipients lists the recipients the relay refused at RCPT.
	Recipients []RecipientError
	// Temporary means a later try may succeed (4xx reply, network error).
	Temporary bool
	// Uncertain means the relay may have taken the message: the data was
	// sent in full but its reply never arrived. Delivering again risks a
	// duplicate.
	Uncertain bool
	// Err is the underlying network or protocol error, if any.
	Err error
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "relay %s refused the message at %s", e.Relay, e.Stage)
	if e.Uncertain {
		b.Reset()
		fmt.Fprintf(&b, "relay %s: no reply after the end of data; the message may have been delivered", e.Relay)
	}
	if e.Reply != "" {
		fmt.Fprintf(&b, ": %s", e.Reply)
	}
	for _, r := range e.Recipients {
		fmt.Fprintf(&b, "; <%s>: %s", r.Recipient, r.Reply)
	}
	if e.Err != nil && e.Reply == "" && len(e.Recipients) == 0 {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap lets errors.Is find ErrDeliveryFailed, ErrUnavailable when the
// failure is temporary, and the underlying error.
func (e *DeliveryError) Unwrap() []error {
	errs := []error{ErrDeliveryFailed}
	if e.Temporary {
		errs = append(errs, ErrUnavailable)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// requestIDKey is the context key of a request's idempotency key.
type requestIDKey struct{}

// WithRequestID returns a context carrying an idempotency key for the
// operation it is passed to. Release honours it: one key delivers at most
// once, and repeating a key that succeeded returns the recorded result. The
// key travels in the context, like gRPC metadata, so that the Quarantine
// interface stays the same for every implementation.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the idempotency key set by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// ValidRequestID reports whether s can serve as a request id: 1 to 128
// printable ASCII characters without spaces.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
