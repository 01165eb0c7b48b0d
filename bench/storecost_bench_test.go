package bench

// The engine's cost of what the projector writes, table by table, merges included: 10 M
// state messages of a storm's shape (300-message first scans of GUID-named updates from a
// 30,000-update catalog) folded by package fold into batches of the projector's default size
// (200,000 messages), inserted into a fresh chDB database, then left until no merge runs.
// Reported: the inserts' wall time per table, the process's CPU time during the inserts and
// after them until merges stop (chDB's merge threads are the process's), and the same for the
// current state alone, the least any design writes.
//
//	CHDB_LIB_PATH=… go test ./bench -run '^$' -bench StoreCost -benchtime 1x -timeout 30m

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

func BenchmarkStoreCost(b *testing.B) {
	const reports, perReport, batch = 33334, 300, 200000
	for _, v := range []struct {
		name   string
		tables func(*fold.Batch) []schema.Rows
	}{
		{"projector-rows", func(f *fold.Batch) []schema.Rows { return f.Tables() }},
		{"current-state-alone", func(f *fold.Batch) []schema.Rows { return []schema.Rows{&f.Current} }},
	} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				storeCost(b, reports, perReport, batch, v.tables)
			}
		})
	}
}

func storeCost(b *testing.B, reports, perReport, batch int, tables func(*fold.Batch) []schema.Rows) {
	b.StopTimer()
	ctx := context.Background()
	st, err := chdb.New(chdb.Config{Path: b.TempDir()})
	if err != nil {
		b.Skipf("chDB not available: %v", err)
	}
	defer st.Close()
	const db = "storecost"
	if _, err := schema.Migrate(ctx, st, db); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	catalog := make([]string, 30000)
	for i := range catalog {
		catalog[i] = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff,
			rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff)
	}
	var batches [][]schema.Rows
	f := fold.NewBatch(db)
	offsets := make([]int64, 8)
	now := time.Now().UnixMilli()
	for i := range reports {
		r := &schema.Report{V: 1, Client: fmt.Sprintf("%08x-0000-4000-8000-%012x", rng.Uint32(), i), Site: "P01",
			FullTypes: []schema.TopicType{schema.TopicUpdateCompliance}}
		for j := range perReport {
			r.Messages = append(r.Messages, schema.StateMessage{Serial: uint64(j + 1), Time: now, TopicType: schema.TopicUpdateCompliance,
				TopicID: catalog[rng.IntN(len(catalog))], State: int32(1 + rng.IntN(3))})
		}
		p := i % len(offsets)
		f.Add(fold.Record{Partition: p, Offset: offsets[p], AcceptedAt: now, Report: r})
		f.Processed(p, offsets[p])
		offsets[p]++
		if f.Size() >= batch || i == reports-1 {
			batches = append(batches, tables(f))
			f = fold.NewBatch(db)
		}
	}
	perTable := map[string]time.Duration{}
	cpu0, wall0 := processCPU(), time.Now()
	b.StartTimer()
	for _, ts := range batches {
		for _, rows := range ts {
			start := time.Now()
			if err := st.Insert(ctx, rows); err != nil {
				b.Fatal(err)
			}
			perTable[rows.Table()] += time.Since(start)
		}
	}
	b.StopTimer()
	cpu1, wall1 := processCPU(), time.Now()
	for {
		res, err := st.Query(ctx, "SELECT count() FROM system.merges")
		if err != nil {
			b.Fatal(err)
		}
		if schema.ToUint64(res.Rows[0][0]) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpu2 := processCPU()
	msgs := float64(reports * perReport)
	b.ReportMetric(msgs/wall1.Sub(wall0).Seconds(), "msgs/s")
	b.ReportMetric((cpu1 - cpu0).Seconds(), "insert-cpu-s")
	b.ReportMetric((cpu2 - cpu1).Seconds(), "merge-after-cpu-s")
	b.ReportMetric((cpu2-cpu0).Seconds()/msgs*1e6, "cpu-s/M-msgs")
	for table, d := range perTable {
		b.Logf("%-28s %6.2f s of inserts", table, d.Seconds())
	}
}

// processCPU is the process's user and system CPU time so far, every thread's (chDB's too).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
