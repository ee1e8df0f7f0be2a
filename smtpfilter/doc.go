// Package smtpfilter lets MTAs hand quarantine-bound mail to Lazaret by SMTP
// or LMTP, and delivers released messages back out by SMTP.
//
// [Server] is the inbound side: an MTA (Postfix content_filter or transport,
// Exim smtp transport) routes a message to it, the message is stored through
// lazaret.Quarantine.Put exactly as a gRPC Put would store it, and the final
// 250 reply, naming the quarantine id, is sent only after Put has returned,
// that is after the message is durable. When the store cannot take the
// message the reply is 451, so the MTA keeps it and retries.
//
// The verdict is read from the scanners' headers by a [VerdictReader]
// (SpamAssassin, rspamd, ClamAV, Amavis, MailScanner, plus configured rules).
// The client address and HELO come from the connection or a PROXY protocol
// header from a trusted load balancer; when the connecting peer is a trusted
// relay (an MTA that relays for remote clients), the topmost Received header
// that relay wrote wins, since it names the client the mail really came from.
//
// [Relay] is the outbound side: a lazaret.Deliverer that releases a stored
// message byte for byte to the next hop.
package smtpfilter
