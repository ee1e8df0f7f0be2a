// Package cluster is a node's membership in a Lazaret cluster and the secure
// transport between nodes: the cluster PKI and join tokens (pki.go,
// token.go, dir.go), serf gossip membership with unique node names and
// numbers (membership.go), the Join handler that admits nodes (join.go),
// and the mutual-TLS peer API server and dialer on TCP 1027 (transport.go).
// Runtime (runtime.go) puts them together for package daemon.
//
// Security model: every node holds the cluster CA (certificate and key, so
// any node can admit a joiner), its own certificate whose CommonName is the
// node name and whose URI SAN lazaret://node/<number> is its number, the
// gossip key (serf keyring, AES-GCM), and the SHA-256 of the current join
// token. The peer port requires a client certificate from the cluster CA
// for every method except Join, which a new node calls with the token and a
// certificate request, over TLS pinned to the CA it was given out of band.
//
// It implements member.Membership and member.PeerDialer; the data
// path (package replicator) implements the rest of the peer API.
package cluster
