// Package wire converts between the domain types of package lazaret and
// their protobuf form (proto/lazaretpb), and maps domain errors to gRPC
// status codes and back. Both gRPC servers of a node use it: the local API
// (proto/rpc) and the peer API (replicator), so neither imports the other.
package wire

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
)

// Enum values are kept numerically equal on both sides, so kinds convert by cast.

func timeToPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromPB(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func verdictToPB(v lazaret.Verdict) *pb.Verdict {
	return &pb.Verdict{Kind: pb.VerdictKind(v.Kind), Score: v.Score, Scanner: v.Scanner, Report: v.Report}
}

func verdictFromPB(v *pb.Verdict) lazaret.Verdict {
	if v == nil {
		return lazaret.Verdict{}
	}
	return lazaret.Verdict{Kind: lazaret.VerdictKind(v.Kind), Score: v.Score, Scanner: v.Scanner, Report: v.Report}
}

// MessageToPB converts metadata to its wire form.
func MessageToPB(m *lazaret.Metadata) *pb.Message {
	out := &pb.Message{
		Id:         string(m.ID),
		Node:       int32(m.Node),
		Received:   timeToPB(m.Received),
		Sender:     m.Sender,
		Recipients: m.Recipients,
		ClientIp:   m.ClientIP,
		Helo:       m.Helo,
		From:       m.From,
		To:         m.To,
		Subject:    m.Subject,
		Date:       timeToPB(m.Date),
		MessageId:  m.MessageID,
		Size:       m.Size,
		Sha256:     m.SHA256[:],
		Verdict:    verdictToPB(m.Verdict),
		State:      pb.State(m.State),
		LearnedAs:  pb.LearnKind(m.LearnedAs),
		Version:    &pb.Version{Wall: m.Version.Wall, Logical: m.Version.Logical, Node: int32(m.Version.Node)},
		Placement:  placementToPB(m.Placement),
	}
	if m.MD5 != ([16]byte{}) {
		out.Md5 = m.MD5[:]
	}
	for _, e := range m.History {
		out.History = append(out.History, &pb.Event{
			Time: timeToPB(e.Time), Actor: e.Actor, Action: e.Action, Detail: e.Detail, Node: int32(e.Node), Request: e.Request,
		})
	}
	return out
}

// MessageFromPB converts metadata from its wire form.
func MessageFromPB(p *pb.Message) *lazaret.Metadata {
	m := &lazaret.Metadata{
		ID:         lazaret.ID(p.GetId()),
		Node:       int(p.GetNode()),
		Received:   timeFromPB(p.GetReceived()),
		Sender:     p.GetSender(),
		Recipients: p.GetRecipients(),
		ClientIP:   p.GetClientIp(),
		Helo:       p.GetHelo(),
		From:       p.GetFrom(),
		To:         p.GetTo(),
		Subject:    p.GetSubject(),
		Date:       timeFromPB(p.GetDate()),
		MessageID:  p.GetMessageId(),
		Size:       p.GetSize(),
		Verdict:    verdictFromPB(p.GetVerdict()),
		State:      lazaret.State(p.GetState()),
		LearnedAs:  lazaret.LearnKind(p.GetLearnedAs()),
	}
	copy(m.SHA256[:], p.GetSha256())
	copy(m.MD5[:], p.GetMd5())
	m.Placement = placementFromPB(p.GetPlacement())
	if v := p.GetVersion(); v != nil {
		m.Version = lazaret.Version{Wall: v.Wall, Logical: v.Logical, Node: int(v.Node)}
	}
	for _, e := range p.GetHistory() {
		m.History = append(m.History, lazaret.Event{
			Time: timeFromPB(e.Time), Actor: e.Actor, Action: e.Action, Detail: e.Detail, Node: int(e.Node), Request: e.Request,
		})
	}
	return m
}

// PutMetaToPB converts a put request to the first message of a Put stream.
func PutMetaToPB(r lazaret.PutRequest, expectedSize int64) *pb.PutMeta {
	var restore *pb.Message
	if r.Restore != nil {
		restore = MessageToPB(r.Restore)
	}
	return &pb.PutMeta{
		Restore:      restore,
		Id:           string(r.ID),
		Sender:       r.Sender,
		Recipients:   r.Recipients,
		ClientIp:     r.ClientIP,
		Helo:         r.Helo,
		Verdict:      verdictToPB(r.Verdict),
		From:         r.From,
		To:           r.To,
		Subject:      r.Subject,
		Date:         timeToPB(r.Date),
		MessageId:    r.MessageID,
		Received:     timeToPB(r.Received),
		Actor:        r.Actor,
		ExpectedSize: expectedSize,
	}
}

// PutMetaFromPB converts the first message of a Put stream to a put request.
func PutMetaFromPB(p *pb.PutMeta) lazaret.PutRequest {
	var restore *lazaret.Metadata
	if r := p.GetRestore(); r != nil {
		restore = MessageFromPB(r)
	}
	return lazaret.PutRequest{
		Restore:    restore,
		ID:         lazaret.ID(p.GetId()),
		Sender:     p.GetSender(),
		Recipients: p.GetRecipients(),
		ClientIP:   p.GetClientIp(),
		Helo:       p.GetHelo(),
		Verdict:    verdictFromPB(p.GetVerdict()),
		From:       p.GetFrom(),
		To:         p.GetTo(),
		Subject:    p.GetSubject(),
		Date:       timeFromPB(p.GetDate()),
		MessageID:  p.GetMessageId(),
		Received:   timeFromPB(p.GetReceived()),
		Actor:      p.GetActor(),
	}
}

// ListToPB converts a list query to its wire form.
func ListToPB(q lazaret.ListQuery) *pb.ListRequest {
	r := &pb.ListRequest{
		Since:     timeToPB(q.Since),
		Until:     timeToPB(q.Until),
		Sender:    q.Sender,
		Recipient: q.Recipient,
		Domain:    q.Domain,
		Subject:   q.Subject,
		MinScore:  q.MinScore,
		MaxScore:  q.MaxScore,
		Limit:     int32(q.Limit),
		Cursor:    q.Cursor,
	}
	for _, v := range q.Verdicts {
		r.Verdicts = append(r.Verdicts, pb.VerdictKind(v))
	}
	for _, s := range q.States {
		r.States = append(r.States, pb.State(s))
	}
	if q.Node != nil {
		n := int32(*q.Node)
		r.Node = &n
	}
	return r
}

// ListFromPB converts a list query from its wire form.
func ListFromPB(r *pb.ListRequest) lazaret.ListQuery {
	q := lazaret.ListQuery{
		Since:     timeFromPB(r.GetSince()),
		Until:     timeFromPB(r.GetUntil()),
		Sender:    r.GetSender(),
		Recipient: r.GetRecipient(),
		Domain:    r.GetDomain(),
		Subject:   r.GetSubject(),
		MinScore:  r.MinScore,
		MaxScore:  r.MaxScore,
		Limit:     int(r.GetLimit()),
		Cursor:    r.GetCursor(),
	}
	for _, v := range r.GetVerdicts() {
		q.Verdicts = append(q.Verdicts, lazaret.VerdictKind(v))
	}
	for _, s := range r.GetStates() {
		q.States = append(q.States, lazaret.State(s))
	}
	if r.Node != nil {
		n := int(r.GetNode())
		q.Node = &n
	}
	return q
}

// StatusToPB converts a node status to its wire form.
func StatusToPB(s *lazaret.NodeStatus) *pb.StatusResponse {
	return &pb.StatusResponse{
		Node:             int32(s.Node),
		Name:             s.Name,
		Version:          s.Version,
		Started:          timeToPB(s.Started),
		DataDir:          s.DataDir,
		Messages:         s.Messages,
		Bytes:            s.Bytes,
		DiskBytes:        s.DiskBytes,
		RetentionSeconds: int64(s.Retention / time.Second),
		Health:           s.Health,
		Members:          membersToPB(s.Members),
		Index:            indexToPB(s.Index),
		Lag:              lagToPB(s.Lag),
	}
}

func lagToPB(l *lazaret.ReplicationLag) *pb.ReplicationLag {
	if l == nil {
		return nil
	}
	out := &pb.ReplicationLag{
		UnderProtected: l.UnderProtected, UnderProtectedBytes: l.UnderProtectedBytes,
		OldestUnderProtected: timeToPB(l.OldestUnderProtected), RepairQueue: l.RepairQueue,
		Repaired: l.Repaired, RepairedBytes: l.RepairedBytes, CorruptShards: l.CorruptShards,
	}
	for _, n := range l.RemovedNodes {
		out.RemovedNodes = append(out.RemovedNodes, int32(n))
	}
	for _, p := range l.Peers {
		out.Peers = append(out.Peers, &pb.PeerSyncStatus{
			Node: int32(p.Node), LastSuccess: timeToPB(p.LastSuccess), Differences: p.Differences,
			Bytes: p.Bytes, LastAttempt: timeToPB(p.LastAttempt), LastError: p.LastError,
		})
	}
	return out
}

func lagFromPB(p *pb.ReplicationLag) *lazaret.ReplicationLag {
	if p == nil {
		return nil
	}
	out := &lazaret.ReplicationLag{
		UnderProtected: p.GetUnderProtected(), UnderProtectedBytes: p.GetUnderProtectedBytes(),
		OldestUnderProtected: timeFromPB(p.GetOldestUnderProtected()), RepairQueue: p.GetRepairQueue(),
		Repaired: p.GetRepaired(), RepairedBytes: p.GetRepairedBytes(), CorruptShards: p.GetCorruptShards(),
	}
	for _, n := range p.GetRemovedNodes() {
		out.RemovedNodes = append(out.RemovedNodes, int(n))
	}
	for _, s := range p.GetPeers() {
		out.Peers = append(out.Peers, lazaret.PeerSyncStatus{
			Node: int(s.GetNode()), LastSuccess: timeFromPB(s.GetLastSuccess()), Differences: s.GetDifferences(),
			Bytes: s.GetBytes(), LastAttempt: timeFromPB(s.GetLastAttempt()), LastError: s.GetLastError(),
		})
	}
	return out
}

func membersToPB(ms []lazaret.MemberStatus) []*pb.MemberStatus {
	var out []*pb.MemberStatus
	for _, m := range ms {
		out = append(out, &pb.MemberStatus{
			Node: int32(m.Node), Name: m.Name, PeerAddr: m.PeerAddr, GossipAddr: m.GossipAddr, State: m.State,
			Zone: m.Zone, Version: m.Version, Self: m.Self, Reported: m.Reported, Messages: m.Messages,
			Shards: m.Shards, ShardBytes: m.ShardBytes, UnderProtected: m.UnderProtected,
			UnderProtectedBytes: m.UnderProtectedBytes, OldestUnderProtected: timeToPB(m.OldestUnderProtected), Error: m.Error,
		})
	}
	return out
}

func membersFromPB(ps []*pb.MemberStatus) []lazaret.MemberStatus {
	var out []lazaret.MemberStatus
	for _, p := range ps {
		out = append(out, lazaret.MemberStatus{
			Node: int(p.GetNode()), Name: p.GetName(), PeerAddr: p.GetPeerAddr(), GossipAddr: p.GetGossipAddr(),
			State: p.GetState(), Zone: p.GetZone(), Version: p.GetVersion(), Self: p.GetSelf(), Reported: p.GetReported(),
			Messages: p.GetMessages(), Shards: p.GetShards(), ShardBytes: p.GetShardBytes(),
			UnderProtected: p.GetUnderProtected(), UnderProtectedBytes: p.GetUnderProtectedBytes(),
			OldestUnderProtected: timeFromPB(p.GetOldestUnderProtected()), Error: p.GetError(),
		})
	}
	return out
}

// StatusFromPB converts a node status from its wire form.
func StatusFromPB(p *pb.StatusResponse) *lazaret.NodeStatus {
	return &lazaret.NodeStatus{
		Node:      int(p.GetNode()),
		Name:      p.GetName(),
		Version:   p.GetVersion(),
		Started:   timeFromPB(p.GetStarted()),
		DataDir:   p.GetDataDir(),
		Messages:  p.GetMessages(),
		Bytes:     p.GetBytes(),
		DiskBytes: p.GetDiskBytes(),
		Retention: time.Duration(p.GetRetentionSeconds()) * time.Second,
		Health:    p.GetHealth(),
		Members:   membersFromPB(p.GetMembers()),
		Index:     indexFromPB(p.GetIndex()),
		Lag:       lagFromPB(p.GetLag()),
	}
}

func placementToPB(p lazaret.Placement) *pb.Placement {
	out := &pb.Placement{K: int32(p.K), M: int32(p.M), ChunkSize: int32(p.ChunkSize), UnderProtected: p.UnderProtected,
		Version: &pb.Version{Wall: p.Version.Wall, Logical: p.Version.Logical, Node: int32(p.Version.Node)}}
	for _, s := range p.Shards {
		out.Shards = append(out.Shards, &pb.ShardLoc{Index: int32(s.Index), Node: int32(s.Node), Size: s.Size, Sha256: s.SHA256[:]})
	}
	return out
}

func placementFromPB(p *pb.Placement) lazaret.Placement {
	out := lazaret.Placement{K: int(p.GetK()), M: int(p.GetM()), ChunkSize: int(p.GetChunkSize()), UnderProtected: p.GetUnderProtected()}
	if v := p.GetVersion(); v != nil {
		out.Version = lazaret.Version{Wall: v.Wall, Logical: v.Logical, Node: int(v.Node)}
	}
	for _, s := range p.GetShards() {
		loc := lazaret.ShardLoc{Index: int(s.GetIndex()), Node: int(s.GetNode()), Size: s.GetSize()}
		copy(loc.SHA256[:], s.GetSha256())
		out.Shards = append(out.Shards, loc)
	}
	return out
}

// PeerSyncsFromPB converts the peer figures of a NodeStatus answer, for the
// cluster status table.
func PeerSyncsFromPB(ps []*pb.PeerSync) []lazaret.PeerSyncStatus {
	out := make([]lazaret.PeerSyncStatus, 0, len(ps))
	for _, p := range ps {
		s := lazaret.PeerSyncStatus{Node: int(p.GetNode()), Differences: p.GetDifferences(), Bytes: p.GetBytes(), LastError: p.GetLastError()}
		if p.GetLastSuccess() != nil {
			s.LastSuccess = p.GetLastSuccess().AsTime()
		}
		if p.GetLastAttempt() != nil {
			s.LastAttempt = p.GetLastAttempt().AsTime()
		}
		out = append(out, s)
	}
	return out
}
