package wire

import (
	"time"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
)

func indexToPB(s *lazaret.IndexStatus) *pb.IndexStatus {
	if s == nil {
		return nil
	}
	return &pb.IndexStatus{
		Backend: s.Backend, Reachable: s.Reachable, Backlog: s.Backlog,
		BacklogAgeMs: s.BacklogAge.Milliseconds(), Resync: s.Resync, LastError: s.LastError,
		LastFlush: timeToPB(s.LastFlush), Applied: s.Applied,
	}
}

func indexFromPB(p *pb.IndexStatus) *lazaret.IndexStatus {
	if p == nil {
		return nil
	}
	return &lazaret.IndexStatus{
		Backend: p.GetBackend(), Reachable: p.GetReachable(), Backlog: p.GetBacklog(),
		BacklogAge: time.Duration(p.GetBacklogAgeMs()) * time.Millisecond, Resync: p.GetResync(),
		LastError: p.GetLastError(), LastFlush: timeFromPB(p.GetLastFlush()), Applied: p.GetApplied(),
	}
}
