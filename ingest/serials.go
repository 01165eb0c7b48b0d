package ingest

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/http"
	"slices"
	"sort"
	"sync"

	"github.com/statepipe/statepipe/schema"
)

// serials remembers, per client, the most recent messages this node accepted — up to
// serialWindow of them, across reports: each message's serial and a hash of its content (key
// included) — so that a report reusing one of those serials for another message, of the same
// key or any other, is answered 409 (DESIGN §4) before it reaches Kafka. A retry of the same
// report is identical and passes.
//
// It is a fast answer to the client, not the guarantee: it is per node and bounded (a client
// whose entry was evicted, or whose earlier report went to another node, is not checked here).
// The guarantee is the projector's, which refuses any report that reuses the serial of a live
// key with other content and sends it to the dead-letter topic.
type serials struct {
	seed   maphash.Seed
	budget int // bytes per shard
	shards [64]serialShard
}

type serialShard struct {
	mu    sync.Mutex
	last  map[string]lastReport
	bytes int
}

// serialWindow is how many of a client's most recent messages a node remembers: several
// reports of a delta-sending agent, or one full scan of a large catalog.
const serialWindow = 4096

// lastReport holds a client's most recent messages (at most serialWindow) sorted by serial.
type lastReport struct {
	serial []uint64
	hash   []uint32
}

func (l lastReport) size(client string) int { return len(client) + 64 + 12*len(l.serial) }

// newSerials returns a cache of at most about budget bytes, or nil (no check) for budget <= 0.
func newSerials(budget int64) *serials {
	if budget <= 0 {
		return nil
	}
	s := &serials{seed: maphash.MakeSeed(), budget: int(budget / 64)}
	for i := range s.shards {
		s.shards[i].last = map[string]lastReport{}
	}
	return s
}

func (s *serials) shard(client string) *serialShard {
	return &s.shards[maphash.String(s.seed, client)%uint64(len(s.shards))]
}

func (s *serials) sum(m *schema.StateMessage) uint32 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var b [22]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(m.Time))
	binary.LittleEndian.PutUint16(b[8:], uint16(m.TopicType))
	binary.LittleEndian.PutUint32(b[10:], uint32(m.State))
	binary.LittleEndian.PutUint32(b[14:], uint32(m.Error))
	binary.LittleEndian.PutUint32(b[18:], uint32(len(m.Params)))
	h.Write(b[:])
	h.WriteString(m.TopicID)
	for _, p := range m.Params {
		h.WriteByte(0)
		h.WriteString(p)
	}
	x := h.Sum64()
	return uint32(x) ^ uint32(x>>32)
}

// claim checks rep against the client's window and, when it passes, adds its messages to the
// window, under one lock: of two reports that reuse a serial with other content and arrive at
// once, the second is refused (a report that then fails to reach Kafka keeps its claim; its
// retry is identical and passes).
func (s *serials) claim(rep *schema.Report) *rejection {
	if s == nil {
		return nil
	}
	sh := s.shard(rep.Client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if rej := s.check(sh, rep); rej != nil {
		return rej
	}
	s.rememberLocked(sh, rep)
	return nil
}

// check returns a 409 rejection naming the first message of rep that reuses a serial of the
// client's window with other content; the caller holds sh's lock.
func (s *serials) check(sh *serialShard, rep *schema.Report) *rejection {
	last, ok := sh.last[rep.Client]
	if !ok || len(last.serial) == 0 {
		return nil
	}
	lo, hi := last.serial[0], last.serial[len(last.serial)-1]
	for i := range rep.Messages {
		m := &rep.Messages[i]
		if m.Serial < lo || m.Serial > hi {
			continue
		}
		j := sort.Search(len(last.serial), func(j int) bool { return last.serial[j] >= m.Serial })
		if j < len(last.serial) && last.serial[j] == m.Serial && last.hash[j] != s.sum(m) {
			return &rejection{status: http.StatusConflict, code: schema.CodeConflict, reason: "serial_conflict",
				field: fmt.Sprintf("messages[%d].serial", i),
				message: fmt.Sprintf("serial %d was already accepted from client %s with other content; a client's serials never repeat (re-enrol a reinstalled client, or send new serials)",
					m.Serial, rep.Client)}
		}
	}
	return nil
}

// rememberLocked adds rep's messages to the client's window (keeping its serialWindow
// greatest serials), evicting other clients' entries while the shard is over its budget; the
// caller holds sh's lock.
func (s *serials) rememberLocked(sh *serialShard, rep *schema.Report) {
	type pair struct {
		serial uint64
		hash   uint32
	}
	add := make([]pair, len(rep.Messages))
	for i := range rep.Messages {
		add[i] = pair{rep.Messages[i].Serial, s.sum(&rep.Messages[i])}
	}
	old, had := sh.last[rep.Client]
	for i := range old.serial {
		add = append(add, pair{old.serial[i], old.hash[i]})
	}
	sort.SliceStable(add, func(a, b int) bool { return add[a].serial < add[b].serial })
	add = slices.CompactFunc(add, func(a, b pair) bool { return a.serial == b.serial })
	if len(add) > serialWindow {
		add = add[len(add)-serialWindow:]
	}
	l := lastReport{serial: make([]uint64, len(add)), hash: make([]uint32, len(add))}
	for i, p := range add {
		l.serial[i], l.hash[i] = p.serial, p.hash
	}
	if had {
		sh.bytes -= old.size(rep.Client)
	}
	sh.last[rep.Client] = l
	sh.bytes += l.size(rep.Client)
	for c, e := range sh.last { // map order is random: evicts arbitrary entries
		if sh.bytes <= s.budget {
			break
		}
		if c != rep.Client {
			sh.bytes -= e.size(c)
			delete(sh.last, c)
		}
	}
}
