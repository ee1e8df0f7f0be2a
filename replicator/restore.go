package replicator

import (
	"context"
	"fmt"

	"github.com/lazaret/lazaret"
)

// Restores (lazaret.PutRequest.Restore) go through the ordinary put paths,
// so a restored message is stored, placed and replicated like any other;
// the helpers here validate the record and apply it.

// prepareRestore validates req.Restore and makes req name its id and
// envelope, so the put paths clean and check them as for any put.
func prepareRestore(req *lazaret.PutRequest) error {
	r := req.Restore
	if r == nil {
		return nil
	}
	if err := lazaret.ValidateRestore(r); err != nil {
		return err
	}
	req.ID, req.Sender, req.Recipients = r.ID, r.Sender, r.Recipients
	return nil
}

// checkRestoredBody fails a restore whose body is not the one its record
// describes.
func checkRestoredBody(req lazaret.PutRequest, size int64, sum [32]byte) error {
	if r := req.Restore; r != nil && (r.Size != size || r.SHA256 != sum) {
		return fmt.Errorf("%w: restore %s: the body (%d bytes, sha256 %x) is not the one the record describes (%d bytes, sha256 %x)",
			lazaret.ErrInvalidArgument, r.ID, size, sum[:8], r.Size, r.SHA256[:8])
	}
	return nil
}

// restoreOnto replaces the metadata of a stored message whose body is the
// restored one with the restore record (a new version, pushed like any
// change). md5 fills in a checksum an old record lacks.
func (n *Node) restoreOnto(ctx context.Context, rec *lazaret.Metadata, sender string, rcpts []string, md5 [16]byte) (*lazaret.Metadata, error) {
	return n.update(ctx, "restore", rec.ID, func(m *lazaret.Metadata) error {
		r := lazaret.Restored(rec, sender, rcpts)
		r.Size, r.SHA256, r.MD5, r.Placement = m.Size, m.SHA256, m.MD5, m.Placement
		if r.MD5 == ([16]byte{}) {
			r.MD5 = md5
		}
		*m = *r
		return nil
	})
}
