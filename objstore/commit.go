package objstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// Commit makes meta and the finished shards visible together, in one
// transaction that is fsync'd before Commit returns: it writes each shard's
// header and commit-time key (storing a single-chunk shard's chunk), removes
// the pending markers, and writes the metadata and its time-index key. Every
// shard must belong to meta.ID and be finished. A committed shard replaces
// one with the same index stored earlier (its chunks are deleted in the same
// transaction), and meta replaces stored metadata as with PutMeta, so a
// retried Commit is harmless. If Commit fails the writers stay finished and
// may be committed again or aborted.
func (s *Store) Commit(ctx context.Context, meta *lazaret.Metadata, shards ...*ShardWriter) error {
	const op = "objstore.commit"
	if err := checkMeta(op, meta); err != nil {
		return err
	}
	for _, w := range shards {
		if w.id != meta.ID {
			return &lazaret.Error{Op: op, ID: meta.ID, Err: fmt.Errorf("%w: shard of message %s", lazaret.ErrInvalidArgument, w.id)}
		}
	}
	val, err := json.Marshal(meta)
	if err != nil {
		return &lazaret.Error{Op: op, ID: meta.ID, Err: err}
	}
	err = s.commit(ctx, op, meta.ID, shards, func(txn *badger.Txn, d *delta) error {
		if err := putMetaTxn(txn, meta, val, d); err != nil {
			return err
		}
		return s.outboxAppendTxn(txn, OutboxUpsert, meta.ID, meta.Version, d)
	})
	if err == nil {
		s.ws.acked.Add(1)
		s.ws.ackedBytes.Add(meta.Size)
	}
	return err
}

// CommitShards makes finished shards visible in one fsync'd transaction,
// without metadata: for shards of a message whose metadata arrives
// separately (a replica or an erasure-coded piece another node owns). The
// shards may belong to different messages. Shards whose metadata never
// arrives are removed by Expire once their commit time is older than the
// retention cut-off.
func (s *Store) CommitShards(ctx context.Context, shards ...*ShardWriter) error {
	var id lazaret.ID
	if len(shards) > 0 {
		id = shards[0].id
	}
	return s.commit(ctx, "objstore.commitshards", id, shards, nil)
}

func (s *Store) commit(ctx context.Context, op string, id lazaret.ID, shards []*ShardWriter, more func(*badger.Txn, *delta) error) error {
	type slot struct {
		id    lazaret.ID
		index int
	}
	seen := make(map[slot]bool, len(shards))
	for _, w := range shards {
		if w.state != writerFinished {
			return w.stateErr(op)
		}
		k := slot{w.id, w.spec.Index}
		if seen[k] {
			return &lazaret.Error{Op: op, ID: w.id, Err: fmt.Errorf("%w: shard %d given twice", lazaret.ErrInvalidArgument, w.spec.Index)}
		}
		seen[k] = true
	}
	if err := ctx.Err(); err != nil {
		return &lazaret.Error{Op: op, ID: id, Err: err}
	}
	leave, err := s.enter()
	if err != nil {
		return &lazaret.Error{Op: op, ID: id, Err: err}
	}
	defer leave()
	now := s.clock.Now()
	need := int64(writeNeed)
	for _, w := range shards {
		need += int64(len(w.tail()))
	}
	err = s.updateNeed(need, func(txn *badger.Txn, d *delta) error {
		for _, w := range shards {
			if err := commitShardTxn(txn, w, now, d); err != nil {
				return fmt.Errorf("shard %s/%d: %w", w.id, w.spec.Index, err)
			}
		}
		if more != nil {
			return more(txn, d)
		}
		return nil
	})
	if err != nil {
		return &lazaret.Error{Op: op, ID: id, Err: err}
	}
	for _, w := range shards {
		w.state = writerCommitted
		w.val = nil
	}
	return nil
}

// commitShardTxn writes finished shard w's header in txn, replacing any
// shard stored with the same index.
func commitShardTxn(txn *badger.Txn, w *ShardWriter, now time.Time, d *delta) error {
	old, err := getHeader(txn, w.id, w.spec.Index)
	if err != nil {
		return err
	}
	if old != nil {
		if err := deleteShardTxn(txn, old, d); err != nil {
			return err
		}
	}
	if t := w.tail(); t != nil {
		if err := txn.Set(chunkKey(w.id, w.spec.Index, w.gen, 0), t); err != nil {
			return err
		}
	}
	if w.marked {
		if err := txn.Delete(pendingKey(w.id, w.spec.Index, w.gen)); err != nil {
			return err
		}
	}
	h := &header{ShardInfo: w.info, gen: w.gen, committed: now}
	if err := txn.Set(headerKey(w.id, w.spec.Index), encodeHeader(h)); err != nil {
		return err
	}
	if err := txn.Set(shardTimeKey(now, w.id, w.spec.Index), nil); err != nil {
		return err
	}
	d.shards++
	d.shardBytes += w.info.Size
	return nil
}
