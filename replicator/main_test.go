package replicator_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: a Node
// closed before its store must stop all of its and the store's background
// work.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
