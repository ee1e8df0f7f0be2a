package main

import (
	"fmt"
	"time"

	"github.com/lazaret/lazaret/smtpfilter"
)

// SMTPConfig is the [smtp] table: the SMTP/LMTP filter MTAs hand
// quarantine-bound mail to.
type SMTPConfig struct {
	Enabled            bool       `toml:"enabled"`              // run the filter (also: serve --smtp ADDR)
	Listen             string     `toml:"listen"`               // default "127.0.0.1:10026"
	LMTP               bool       `toml:"lmtp"`                 // speak LMTP instead of SMTP
	Hostname           string     `toml:"hostname"`             // greeting name; default node.name
	MaxMessageSize     Size       `toml:"max_message_size"`     // default store.max_message_size
	MaxRecipients      int        `toml:"max_recipients"`       // default 1000
	MaxLineLength      int        `toml:"max_line_length"`      // default 2000
	ReadTimeout        Duration   `toml:"read_timeout"`         // idle limit, default "5m"
	WriteTimeout       Duration   `toml:"write_timeout"`        // default "5m"
	MaxConnections     int        `toml:"max_connections"`      // default 100
	TLSCert            string     `toml:"tls_cert"`             // PEM file; enables STARTTLS
	TLSKey             string     `toml:"tls_key"`              // PEM file
	AllowInsecureAuth  bool       `toml:"allow_insecure_auth"`  // offer AUTH without TLS
	Users              []SMTPUser `toml:"users"`                // AUTH PLAIN logins; when set, AUTH is required
	TrustedProxies     []string   `toml:"trusted_proxies"`      // CIDRs allowed to send PROXY headers
	ProxyOptional      bool       `toml:"proxy_optional"`       // trusted proxies may omit the header
	ProxyHeaderTimeout Duration   `toml:"proxy_header_timeout"` // default "5s"
	TrustedRelays      []string   `toml:"trusted_relays"`       // MTAs whose Received header names the client
	HighSpamScore      float64    `toml:"high_spam_score"`      // default 15
	HeaderRules        []SMTPRule `toml:"header_rules"`         // extra verdict rules
}

// SMTPUser is one [[smtp.users]] entry.
type SMTPUser struct {
	Name     string `toml:"name"`
	Password string `toml:"password"`
}

// SMTPRule is one [[smtp.header_rules]] entry; see smtpfilter.HeaderRule.
type SMTPRule struct {
	Header  string `toml:"header"`  // header name regexp
	Value   string `toml:"value"`   // value regexp; a group named "score" gives the score
	Verdict string `toml:"verdict"` // spam, highspam, virus, policy, other
	Scanner string `toml:"scanner"`
}

// ReleaseConfig is the [release] table: where released messages go.
type ReleaseConfig struct {
	Relay                 string   `toml:"relay"`                    // next hop, default "127.0.0.1:25"
	Hostname              string   `toml:"hostname"`                 // EHLO name; default node.name
	StartTLS              bool     `toml:"starttls"`                 // require STARTTLS
	TLSServerName         string   `toml:"tls_server_name"`          // default the relay's host
	TLSInsecureSkipVerify bool     `toml:"tls_insecure_skip_verify"` // accept any certificate
	ConnectTimeout        Duration `toml:"connect_timeout"`          // default "30s"
	CommandTimeout        Duration `toml:"command_timeout"`          // default "5m"
	DataTimeout           Duration `toml:"data_timeout"`             // default "10m"
}

func defaultSMTPConfig() SMTPConfig {
	d := smtpfilter.DefaultConfig()
	return SMTPConfig{
		Listen: d.Listen, MaxRecipients: d.MaxRecipients, MaxLineLength: d.MaxLineLength,
		ReadTimeout: Duration(d.ReadTimeout), WriteTimeout: Duration(d.WriteTimeout),
		MaxConnections: d.MaxConnections, ProxyHeaderTimeout: Duration(d.ProxyHeaderTimeout),
		TrustedRelays: d.TrustedRelays, HighSpamScore: d.Verdict.HighSpamScore,
	}
}

func defaultReleaseConfig() ReleaseConfig {
	d := smtpfilter.DefaultRelayConfig()
	return ReleaseConfig{
		Relay: d.Addr, ConnectTimeout: Duration(d.DialTimeout),
		CommandTimeout: Duration(d.CommandTimeout), DataTimeout: Duration(d.DataTimeout),
	}
}

// smtpfilterConfig derives the filter's configuration.
func (c *Config) smtpfilterConfig() smtpfilter.Config {
	s := c.SMTP
	fc := smtpfilter.DefaultConfig()
	fc.Listen, fc.LMTP, fc.Hostname = s.Listen, s.LMTP, s.Hostname
	if fc.Hostname == "" {
		fc.Hostname = c.Node.Name
	}
	fc.MaxMessageBytes = int64(s.MaxMessageSize)
	if fc.MaxMessageBytes == 0 {
		fc.MaxMessageBytes = int64(c.Store.MaxMessageSize)
	}
	fc.MaxRecipients, fc.MaxLineLength, fc.MaxConnections = s.MaxRecipients, s.MaxLineLength, s.MaxConnections
	fc.ReadTimeout, fc.WriteTimeout = time.Duration(s.ReadTimeout), time.Duration(s.WriteTimeout)
	fc.TLSCert, fc.TLSKey, fc.AllowInsecureAuth = s.TLSCert, s.TLSKey, s.AllowInsecureAuth
	fc.Users = nil
	for _, u := range s.Users {
		fc.Users = append(fc.Users, smtpfilter.User{Name: u.Name, Password: u.Password})
	}
	fc.TrustedProxies, fc.ProxyOptional = s.TrustedProxies, s.ProxyOptional
	fc.ProxyHeaderTimeout = time.Duration(s.ProxyHeaderTimeout)
	fc.TrustedRelays = s.TrustedRelays
	fc.Verdict.HighSpamScore = s.HighSpamScore
	for _, r := range s.HeaderRules {
		fc.Verdict.Rules = append(fc.Verdict.Rules, smtpfilter.HeaderRule{Header: r.Header, Value: r.Value, Verdict: r.Verdict, Scanner: r.Scanner})
	}
	return fc
}

// relayConfig derives the release relay's configuration.
func (c *Config) relayConfig() smtpfilter.RelayConfig {
	r := c.Release
	rc := smtpfilter.DefaultRelayConfig()
	rc.Addr, rc.Hostname = r.Relay, r.Hostname
	if rc.Hostname == "" {
		rc.Hostname = c.Node.Name
	}
	rc.StartTLS, rc.TLSServerName, rc.TLSInsecureSkipVerify = r.StartTLS, r.TLSServerName, r.TLSInsecureSkipVerify
	rc.DialTimeout, rc.CommandTimeout, rc.DataTimeout = time.Duration(r.ConnectTimeout), time.Duration(r.CommandTimeout), time.Duration(r.DataTimeout)
	return rc
}

// validateSMTP checks the [smtp] and [release] tables, naming the key.
func (c *Config) validateSMTP() error {
	if c.SMTP.Enabled {
		fc := c.smtpfilterConfig()
		if err := fc.Validate(); err != nil {
			return fmt.Errorf("smtp: %w", err)
		}
	}
	rc := c.relayConfig()
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
