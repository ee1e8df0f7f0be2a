//go:build race

package fuse

// raceEnabled: the race detector slows the property test about five-fold,
// so it runs fewer sequences (make test runs every package with -race).
const raceEnabled = true
