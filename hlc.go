package lazaret

import "sync"

// HLC issues Versions for one node: each is newer than every Version it issued
// or observed before, even if the wall clock steps backwards.
type HLC struct {
	clock Clock
	node  int

	mu   sync.Mutex
	last Version
}

// NewHLC returns a hybrid logical clock for node number node.
func NewHLC(clock Clock, node int) *HLC { return &HLC{clock: clock, node: node} }

// Now returns a new Version, newer than any returned or observed before.
func (h *HLC) Now() Version {
	h.mu.Lock()
	defer h.mu.Unlock()
	wall := h.clock.Now().UnixNano()
	if wall > h.last.Wall {
		h.last = Version{Wall: wall, Node: h.node}
	} else {
		h.last = Version{Wall: h.last.Wall, Logical: h.last.Logical + 1, Node: h.node}
	}
	return h.last
}

// Observe records a Version seen from elsewhere (a peer, or the store on
// start-up) so that later calls to Now are newer than it.
func (h *HLC) Observe(v Version) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v.Wall > h.last.Wall || (v.Wall == h.last.Wall && v.Logical > h.last.Logical) {
		h.last = Version{Wall: v.Wall, Logical: v.Logical, Node: h.node}
	}
}
