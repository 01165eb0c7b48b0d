package replicator

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// wireMessage is a valid message with a cell of each kind and a heartbeat.
func wireMessage() *Message {
	return &Message{V: wireVersion, Origin: "S01", Epoch: 1_800_000_000, Seq: 7,
		Cells: []Cell{
			{Kind: KindStates, Scope: "SMS00001", TopicType: 500, TopicID: "16777220", Code: 3, Clients: 12, Scanned: 40},
			{Kind: KindErrors, Scope: "SMS00001", TopicType: 402, TopicID: "äöü-id", Code: -2147024891, Clients: 2},
			{Kind: KindLists, Scope: "SMS00002", TopicID: "ScopeId_1/UpdateList_2", Code: 1, Clients: 99},
			{Kind: KindScans, Scope: "SMS00002", Code: 1_799_999_000_000, Clients: math.MaxInt64},
		},
		Heartbeat: &Heartbeat{Parent: "CEN", Sweep: Version(1_800_000_000, 1), Watermark: 1_800_000_001_000,
			SentAt: 1_800_000_002_000, LagRecords: 5, BacklogRecords: 9, Cells: 4}}
}

func TestWireRoundTrip(t *testing.T) {
	for name, m := range map[string]*Message{
		"cells and heartbeat": wireMessage(),
		"heartbeat only":      {V: wireVersion, Origin: "S01", Epoch: 1, Seq: 1, Heartbeat: &Heartbeat{Parent: "CEN"}},
		"cells only":          {V: wireVersion, Origin: "ABCDEFGHIJ123456", Epoch: math.MaxUint32, Seq: math.MaxUint32, Cells: wireMessage().Cells[:1]},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("round trip:\n got %+v (hb %+v)\nwant %+v (hb %+v)", got, got.Heartbeat, m, m.Heartbeat)
			}
		})
	}
}

// Decode refuses what a parent must not fold, and its error names the field.
func TestDecodeRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(m *Message)
		want   string
	}{
		{"v 0", func(m *Message) { m.V = 0 }, "v is 0, want 1"},
		{"v 2", func(m *Message) { m.V = 2 }, "v is 2, want 1"},
		{"origin empty", func(m *Message) { m.Origin = "" }, `origin ""`},
		{"origin lower case", func(m *Message) { m.Origin = "s01" }, `origin "s01"`},
		{"origin too long", func(m *Message) { m.Origin = "ABCDEFGHIJ1234567" }, `origin "ABCDEFGHIJ1234567"`},
		{"epoch 0", func(m *Message) { m.Epoch = 0 }, "epoch is 0"},
		{"kind 0", func(m *Message) { m.Cells[1].Kind = 0 }, "cells[1].kind 0 is not 1–4"},
		{"kind 5", func(m *Message) { m.Cells[3].Kind = 5 }, "cells[3].kind 5 is not 1–4"},
		{"scope control char", func(m *Message) { m.Cells[0].Scope = "SMS\x0000001" }, "cells[0] has an id"},
		{"topic id newline", func(m *Message) { m.Cells[2].TopicID = "list\n1" }, "cells[2] has an id"},
		{"topic id C1", func(m *Message) { m.Cells[1].TopicID = "id\u0085" }, "cells[1] has an id"},
		{"topic id DEL", func(m *Message) { m.Cells[1].TopicID = "id\x7f" }, "cells[1] has an id"},
		{"scope invalid UTF-8", func(m *Message) { m.Cells[3].Scope = "SMS\xff" }, "cells[3] has an id"},
		{"hb parent empty", func(m *Message) { m.Heartbeat.Parent = "" }, `hb.parent ""`},
		{"hb parent bad", func(m *Message) { m.Heartbeat.Parent = "C-N" }, `hb.parent "C-N"`},
		{"hb pacing too long", func(m *Message) { m.Heartbeat.Pacing = strings.Repeat("x", MaxPacingBytes+1) }, "hb.pacing"},
		{"hb pacing not UTF-8", func(m *Message) { m.Heartbeat.Pacing = "\xff" }, "hb.pacing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := wireMessage()
			c.change(m)
			b, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err == nil {
				t.Fatalf("Decode accepted %+v", got)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "cannot ") {
				t.Errorf("error %q, want one naming %q", err, c.want)
			}
		})
	}
	for name, b := range map[string][]byte{"empty": nil, "not msgpack": []byte("\xc1"), "an array": {0x91, 0x01}} {
		if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "cannot decode a replicated message") {
			t.Errorf("%s: error %v, want cannot decode", name, err)
		}
	}
}

// A version only grows for one origin: a new epoch beats any sequence number of an older one.
func TestVersionOrder(t *testing.T) {
	ordered := []uint64{Version(1, 0), Version(1, 1), Version(1, math.MaxUint32), Version(2, 0), Version(2, 1), Version(math.MaxUint32, 0)}
	for i := 1; i < len(ordered); i++ {
		if ordered[i-1] >= ordered[i] {
			t.Errorf("version %d: %#x not above %#x", i, ordered[i], ordered[i-1])
		}
	}
	m := Message{Epoch: 3, Seq: 9}
	if m.Version() != Version(3, 9) || m.Version() != 3<<32|9 {
		t.Errorf("Message.Version %#x, want %#x", m.Version(), uint64(3<<32|9))
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindStates: "states", KindErrors: "errors", KindLists: "lists", KindScans: "scans", 9: "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
