package objstore

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// RunGC reclaims value-log space: it calls badger's RunValueLogGC with
// Config.GCDiscardRatio until no file is worth rewriting (ErrNoRewrite).
// ErrRejected (another GC running) ends the loop without error, and so does
// Close. Badger learns which value-log bytes are garbage as deletions are
// compacted out of the LSM tree, so space freed by recent deletes may only be
// reclaimed by a later run.
func (s *Store) RunGC() error {
	leave, err := s.enter()
	if err != nil {
		return fmt.Errorf("objstore.gc: %w", err)
	}
	defer leave()
	rewrites := 0
	defer func() {
		if rewrites > 0 {
			s.log.Info("value log GC", "files_rewritten", rewrites)
		}
	}()
	for {
		select {
		case <-s.done:
			return nil
		default:
		}
		// GC copies a file's live values before it frees the file.
		if !s.gcFits() {
			s.log.Warn("value log GC skipped: too little free space to copy a value log file", "dir", s.cfg.Dir)
			return nil
		}
		err := s.db.RunValueLogGC(s.cfg.GCDiscardRatio)
		switch {
		case err == nil:
			rewrites++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return fmt.Errorf("objstore.gc: %w", err)
		}
	}
}
