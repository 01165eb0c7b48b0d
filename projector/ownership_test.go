package projector

import (
	"reflect"
	"testing"
)

// A member claims the partitions a generation gives it that it did not hold in the generation
// just before; after a missed generation, it claims them all again.
func TestOwnershipAssign(t *testing.T) {
	type step struct {
		gen        int32
		partitions []int
		claim      []int32 // partitions then claimed (their epochs recorded)
		want       []int32 // gained
	}
	cases := []struct {
		name  string
		steps []step
		held  []int32 // claimed at the end
	}{
		{name: "first generation gains everything",
			steps: []step{{1, []int{2, 0, 1}, nil, []int32{0, 1, 2}}}},
		{name: "the next generation keeps what was claimed",
			steps: []step{{1, []int{0, 1}, []int32{0, 1}, []int32{0, 1}}, {2, []int{1, 2}, nil, []int32{2}}},
			held:  []int32{1}},
		{name: "a missed generation claims everything again",
			steps: []step{{1, []int{0, 1}, []int32{0, 1}, []int32{0, 1}}, {3, []int{0, 1}, nil, []int32{0, 1}}}},
		{name: "a partition gained but never claimed is gained again",
			steps: []step{{1, []int{0, 1}, []int32{0}, []int32{0, 1}}, {2, []int{0, 1}, nil, []int32{1}}},
			held:  []int32{0}},
		{name: "losing every partition",
			steps: []step{{1, []int{0}, []int32{0}, []int32{0}}, {2, nil, nil, nil}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOwnership()
			for i, s := range c.steps {
				if got := o.assign(s.gen, s.partitions); !reflect.DeepEqual(got, s.want) {
					t.Errorf("step %d: gained %v, want %v", i, got, s.want)
				}
				for _, p := range s.claim {
					o.epochs[p] = int64(nextEpoch(0, s.gen))
				}
			}
			for p := int32(0); p < 4; p++ {
				want := false
				for _, h := range c.held {
					want = want || h == p
				}
				if o.owns(p) != want {
					t.Errorf("owns(%d) = %v, want %v", p, o.owns(p), want)
				}
			}
		})
	}
}

// Torn partitions wait; the others are ready to claim, sorted.
func TestOwnershipReady(t *testing.T) {
	o := newOwnership()
	o.await([]int32{3, 1, 2, 0})
	if got := o.ready([]int32{2, 7}); !reflect.DeepEqual(got, []int32{0, 1, 3}) {
		t.Errorf("ready %v, want [0 1 3]", got)
	}
	o.await(nil)
	if got := o.ready(nil); got != nil {
		t.Errorf("ready %v after await(nil), want none", got)
	}
}

// A claim's epoch is above every epoch recorded for the partition, and names its generation.
func TestNextEpoch(t *testing.T) {
	e1 := nextEpoch(0, 7)
	e2 := nextEpoch(e1, 3) // a later claim in a generation with a smaller id (the group was recreated)
	if e1 != 1<<32|7 || e2 <= e1 || uint32(e2) != 3 {
		t.Errorf("epochs %#x then %#x: want increasing, generation in the low half", e1, e2)
	}
}
