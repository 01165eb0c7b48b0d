package ingest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

func TestSerialsRefuseOnlyOtherContent(t *testing.T) {
	s := newSerials(1 << 20)
	rep := &schema.Report{Client: "c", Messages: []schema.StateMessage{
		{Serial: 7, Time: 1, TopicType: 500, TopicID: "KB1", State: 2},
		{Serial: 3, Time: 1, TopicType: 500, TopicID: "KB2", State: 3, Params: []string{"a"}},
		{Serial: 12, Time: 1, TopicType: 501, State: 3}}}
	if rej := s.claim(rep); rej != nil {
		t.Fatalf("a first report was refused: %+v", rej)
	}
	if rej := s.claim(rep); rej != nil {
		t.Fatalf("a retry was refused: %+v", rej)
	}
	for i, change := range []func(m *schema.StateMessage){
		func(m *schema.StateMessage) { m.State = 1 },
		func(m *schema.StateMessage) { m.Params = []string{"b"} },
		func(m *schema.StateMessage) { m.Time = 2 },
		func(m *schema.StateMessage) { m.TopicID = "KB9" },
	} {
		m := rep.Messages[1]
		m.Params = append([]string(nil), m.Params...)
		change(&m)
		other := &schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 20, TopicType: 701}, m}}
		rej := s.claim(other)
		if rej == nil || rej.status != 409 || rej.field != "messages[1].serial" {
			t.Errorf("change %d: got %+v, want 409 naming messages[1].serial", i, rej)
		}
	}
	// Serials the last report did not carry, inside its range or not, are not known here.
	if rej := s.claim(&schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 5, TopicType: 701}, {Serial: 13, TopicType: 701}}}); rej != nil {
		t.Errorf("unknown serials refused: %+v", rej)
	}
	if rej := s.claim(&schema.Report{Client: "d", Messages: rep.Messages[:1]}); rej != nil {
		t.Errorf("another client's serials refused: %+v", rej)
	}
}

func TestSerialsStayWithinBudget(t *testing.T) {
	s := newSerials(64 * 4096)
	msgs := make([]schema.StateMessage, 100)
	for i := range msgs {
		msgs[i] = schema.StateMessage{Serial: uint64(i + 1), TopicType: 500, TopicID: fmt.Sprint("KB", i)}
	}
	for c := 0; c < 10000; c++ {
		s.claim(&schema.Report{Client: fmt.Sprint("client-", c), Messages: msgs})
	}
	entry := lastReport{serial: make([]uint64, 100)}.size("client-0000")
	for i := range s.shards {
		if b := s.shards[i].bytes; b > s.budget+entry {
			t.Fatalf("shard %d holds %d bytes, budget %d", i, b, s.budget)
		}
	}
	if newSerials(0) != nil {
		t.Error("budget 0 must turn the check off")
	}
	var off *serials
	off.claim(&schema.Report{Client: "c", Messages: msgs})
	if off.claim(&schema.Report{Client: "c", Messages: msgs}) != nil {
		t.Error("a nil cache refused a report")
	}
}

// TestSerialsRefuseReuseAcrossReportsAndKeys: a serial is one message of its client, whatever
// its key, and stays so after later reports: U-ONE at s, something at s+1, then U-TWO at s
// was accepted (the node remembered only the last report).
func TestSerialsRefuseReuseAcrossReportsAndKeys(t *testing.T) {
	s := newSerials(1 << 20)
	s.claim(&schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 10, Time: 1, TopicType: 500, TopicID: "U-ONE", State: 2}}})
	s.claim(&schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 11, Time: 1, TopicType: 500, TopicID: "U-X", State: 3}}})
	reuse := &schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 12, Time: 1, TopicType: 701},
		{Serial: 10, Time: 1, TopicType: 500, TopicID: "U-TWO", State: 2}}}
	if rej := s.claim(reuse); rej == nil || rej.status != 409 || rej.field != "messages[1].serial" {
		t.Fatalf("serial 10 reused for another update two reports later: got %+v, want 409 naming messages[1].serial", rej)
	}
	// The window keeps the client's greatest serials.
	for i := 0; i < 3; i++ {
		msgs := make([]schema.StateMessage, serialWindow)
		for j := range msgs {
			msgs[j] = schema.StateMessage{Serial: uint64(100 + i*serialWindow + j), TopicType: 701}
		}
		s.claim(&schema.Report{Client: "c", Messages: msgs})
	}
	l := s.shard("c").last["c"]
	if len(l.serial) != serialWindow || l.serial[0] != uint64(100+2*serialWindow) {
		t.Fatalf("window holds %d serials from %d, want %d from %d", len(l.serial), l.serial[0], serialWindow, 100+2*serialWindow)
	}
}

// TestConflictingReportsAtOnceOneIsRefused: the check and the memory of a report are one step,
// so of two reports reusing a serial with other content that arrive at the same time, one is
// refused (checking both before remembering either let both through).
func TestConflictingReportsAtOnceOneIsRefused(t *testing.T) {
	s := newSerials(1 << 20)
	for round := 0; round < 200; round++ {
		client := fmt.Sprint("c", round)
		var refused [2]bool
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep := &schema.Report{Client: client, Messages: []schema.StateMessage{{Serial: 5, TopicType: 500, TopicID: fmt.Sprint("KB", i), State: 2}}}
				refused[i] = s.claim(rep) != nil
			}()
		}
		wg.Wait()
		if refused[0] == refused[1] {
			t.Fatalf("round %d: refused %v, want exactly one of two conflicting reports refused", round, refused)
		}
	}
}
