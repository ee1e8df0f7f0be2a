package daemon

import (
	"net/http"
	"net/http/pprof"
	"runtime"
)

// Sampling of the block and mutex profiles while Config.PProf is on: one
// blocking event per blockProfileRate nanoseconds blocked, one in
// mutexProfileFraction contended mutex events. Both are process-wide
// runtime settings, as the profiles themselves are.
const (
	blockProfileRate     = 10_000 // 10 µs
	mutexProfileFraction = 100
)

// handlePProf serves net/http/pprof's handlers under /debug/pprof/ on mux
// (not on http.DefaultServeMux) and turns on block and mutex sampling. A CPU
// profile or trace must be shorter than the endpoint's 30 s write timeout
// (e.g. ?seconds=20).
func handlePProf(mux *http.ServeMux) {
	runtime.SetBlockProfileRate(blockProfileRate)
	runtime.SetMutexProfileFraction(mutexProfileFraction)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // heap, block, mutex, goroutine, ... by name
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
