// Package lazaret holds the domain types and interfaces of Lazaret, a replicated,
// erasure-coded quarantine store for clusters of mail-gateway nodes.
//
// The root package says what things are: message ids ([ID], [Allocator]), the
// metadata kept for every quarantined message ([Metadata]), the versions used to
// merge replicas ([Version]), and the operations a node offers ([Quarantine]).
// Subpackages say how: objstore keeps bytes on a node's disk, replicator decides
// where they live, index makes metadata searchable, proto carries the API, and
// cmd/lazaret is the one binary.
//
// Nothing here keeps global state. Time comes from a [Clock], logging from an
// injected *slog.Logger, configuration from explicit Config structs.
package lazaret
