// Package fuse shows a cluster's quarantine as a MailScanner quarantine tree
// through a FUSE mount, so that MailWatch, Baruwa, MailScanner's cleaners and
// admins with find, grep, rsync and rm work on it unchanged.
//
// The view is built only on [lazaret.Quarantine]: it works the same over a
// node in the same process or over the gRPC client of a local node's socket.
//
// Layout (see [Config] for the mapping, which is configurable):
//
//	<YYYYMMDD>/spam/<id>       spam and high-scoring spam
//	<YYYYMMDD>/nonspam/<id>    other verdicts
//	<YYYYMMDD>/mcp/<id>        policy verdicts
//	<YYYYMMDD>/<id>/message    viruses (MailScanner's StoreInfections form)
//
// The day is the received time in the configured time zone. Listings come
// from metadata only (List by received-time range); a body is fetched only
// when a file is read, whole, and checked against its SHA-256 before the
// first byte is served, so a reader gets the exact bytes or EIO.
//
// Writes: unlink deletes (actor "fuse"), rmdir removes empty directories,
// creating a file in a kind directory (or "message" in an id directory)
// quarantines it when the file is closed or fsync'd. The package's README
// section (README.md "FUSE view") lists every operation and its errno.
package fuse
