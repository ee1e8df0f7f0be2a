// Package test holds Lazaret's multi-process, fault and end-to-end tests. They
// build the real lazaret binary once, run it as separate processes on real
// sockets, and talk to it as users and tools would.
package test
