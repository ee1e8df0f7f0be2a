package smtpfilter

import (
	"net/netip"
	"regexp"
	"strings"
)

var (
	reReceivedFrom = regexp.MustCompile(`(?i)^\s*from\s+(\S+)(.*?)(?:\s+by\s|;|$)`)
	reBracketAddr  = regexp.MustCompile(`\[(?i:ipv6:)?([0-9A-Fa-f:.]+)\](?::[0-9]+)?`)
	reHeloEq       = regexp.MustCompile(`(?i)\bhelo=([^\s)\]]+)`)
)

// ReceivedClient reads the client address and HELO name from the "from"
// clause of a Received header value, as Postfix, Exim and Sendmail write it:
//
//	from helo.example (rdns.example [192.0.2.1]) by mx ...       Postfix, Sendmail
//	from rdns.example ([192.0.2.1] helo=helo.example) by mx ...  Exim
//	from [192.0.2.1] (helo=helo.example) by mx ...               Exim, no rDNS
//	from rdns.example ([IPv6:2001:db8::1]) by mx ...             HELO same as rDNS
//
// ok is false when the clause names no address (local submission, or not a
// Received header an MTA wrote).
func ReceivedClient(value string) (ip netip.Addr, helo string, ok bool) {
	m := reReceivedFrom.FindStringSubmatch(value)
	if m == nil {
		return netip.Addr{}, "", false
	}
	first, rest := m[1], m[2]
	a := reBracketAddr.FindStringSubmatch(first + rest)
	if a == nil {
		return netip.Addr{}, "", false
	}
	ip, err := netip.ParseAddr(a[1])
	if err != nil {
		return netip.Addr{}, "", false
	}
	if h := reHeloEq.FindStringSubmatch(rest); h != nil {
		helo = h[1]
	} else if !strings.HasPrefix(first, "[") {
		helo = first
	}
	return ip.Unmap(), clean(helo), true
}

// topReceived returns the value of the first Received field.
func topReceived(fields []Field) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Received") {
			return f.Value, true
		}
	}
	return "", false
}
