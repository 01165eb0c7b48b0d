package bench

// Report latency at DESIGN §5 scale: 100,000 clients × 300 applicable updates = 30 M current
// states, generated inside the engine (INSERT … SELECT FROM numbers()), then the compliance
// report for a 100-update list over a 100,000-client collection and the deployment query.
//
//	CHDB_LIB_PATH=… go test ./bench -run '^$' -bench Reports -benchtime 5x -timeout 30m
//
// STATEPIPE_BENCH_DIR keeps the generated store between runs (generation takes minutes).

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

const (
	benchClients = 100000
	benchUpdates = 300
	benchList    = 100
	benchDB      = "statepipe_bench30m"
)

func openBenchStore(b *testing.B) *chdb.Store {
	dir := os.Getenv("STATEPIPE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	st, err := chdb.New(chdb.Config{Path: dir})
	if err != nil {
		b.Skipf("chDB not available: %v", err)
	}
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, st, benchDB); err != nil {
		b.Fatal(err)
	}
	res, err := st.Query(ctx, "SELECT count() FROM "+benchDB+".current_state")
	if err != nil {
		b.Fatal(err)
	}
	if res.Rows[0][0].(int64) >= benchClients*benchUpdates {
		return st
	}
	start := time.Now()
	db := benchDB
	for _, q := range []string{
		// Catalog: 300 updates, first synchronised over the last year.
		fmt.Sprintf(`INSERT INTO %s.ref_updates (id, title, first_synced, imported_at, version)
			SELECT concat('upd-', leftPad(toString(number), 5, '0')), concat('Update ', toString(number)),
			       toDateTime64('2025-11-01 00:00:00', 3, 'UTC') + toIntervalDay(number), now64(3), 1 FROM numbers(%d)`, db, benchUpdates),
		fmt.Sprintf(`INSERT INTO %s.ref_update_lists (id, name, updates, imported_at, version)
			SELECT 'list-100', 'first hundred', groupArray(concat('upd-', leftPad(toString(number), 5, '0'))), now64(3), 1 FROM numbers(%d)`, db, benchList),
		fmt.Sprintf(`INSERT INTO %s.ref_collections (id, name, members, imported_at, version)
			SELECT 'all', 'all clients', groupArray(concat('client-', toString(number))), now64(3), 1 FROM numbers(%d)`, db, benchClients),
		fmt.Sprintf(`INSERT INTO %s.ref_deployments (id, name, updates, collection, start, deadline, mandatory, site, imported_at, version)
			VALUES ('dep-1', 'bench deployment', ['upd-00000'], 'all', now64(3), now64(3) + toIntervalDay(7), 1, 'P01', now64(3), 1)`, db),
		fmt.Sprintf(`INSERT INTO %s.clients (client, last_serial, last_seen) SELECT concat('client-', toString(number)), %d, now64(3) FROM numbers(%d)`, db, benchUpdates+2, benchClients),
		// One full report per client (marker serial 1), a successful scan for 90 % of them.
		fmt.Sprintf(`INSERT INTO %s.full_reports SELECT concat('client-', toString(number)), 500, 1, now64(3) FROM numbers(%d)`, db, benchClients),
		fmt.Sprintf(`INSERT INTO %s.scan_history SELECT concat('client-', toString(number)), %d, 'wsus', 3,
			toDateTime64('2026-06-01 00:00:00', 3, 'UTC') FROM numbers(%d) WHERE number %% 10 != 0`, db, benchUpdates+1, benchClients),
		// 30 M update-compliance states: client-major, as projector batches arrive.
		fmt.Sprintf(`INSERT INTO %s.current_state
			SELECT 500, concat('upd-', leftPad(toString(number %% %d), 5, '0')), concat('client-', toString(intDiv(number, %d))),
			       number %% %d + 1, toInt16(cityHash64(number) %% 4), 0, now64(3), now64(3)
			FROM numbers(%d) SETTINGS max_insert_threads = 2`, db, benchUpdates, benchUpdates, benchUpdates, benchClients*benchUpdates),
		// Deployment enforcement for 80 % of targeted clients.
		fmt.Sprintf(`INSERT INTO %s.current_state
			SELECT 301, 'dep-1', concat('client-', toString(number)), %d, toInt16(cityHash64(number) %% 11), 0, now64(3), now64(3)
			FROM numbers(%d) WHERE number %% 5 != 0`, db, benchUpdates+2, benchClients),
		fmt.Sprintf(`OPTIMIZE TABLE %s.current_state FINAL`, db),
	} {
		if err := st.Exec(ctx, q); err != nil {
			b.Fatalf("cannot generate bench data: %v\n%s", err, q)
		}
	}
	b.Logf("generated %d current states in %s", benchClients*benchUpdates, time.Since(start).Round(time.Millisecond))
	return st
}

// ensureAggregates derives the aggregate tables from the generated states, as a projector
// restoring its index at start does (the generated data bypassed the projector).
func ensureAggregates(b *testing.B, st *chdb.Store) {
	ctx := context.Background()
	res, err := st.Query(ctx, "SELECT least((SELECT count() FROM "+benchDB+".agg_lists), (SELECT count() FROM "+benchDB+".agg_scans))")
	if err != nil {
		b.Fatal(err)
	}
	if res.Rows[0][0].(int64) > 0 {
		return
	}
	start := time.Now()
	if err := projector.RebuildAggregates(ctx, st, benchDB, 7*24*time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Logf("derived the aggregates of %d current states (index restore + write) in %s", benchClients*benchUpdates, time.Since(start).Round(time.Millisecond))
}

func BenchmarkReports30M(b *testing.B) {
	st := openBenchStore(b)
	defer st.Close()
	ensureAggregates(b, st)
	ctx := context.Background()
	var agg, scan *report.Compliance
	for _, c := range []struct {
		name string
		p    report.ComplianceParams
		keep **report.Compliance
	}{
		{"compliance-list100-collection100k", report.ComplianceParams{List: "list-100", Scope: report.Scope{Collection: "all"}}, &agg},
		{"compliance-list100-site", report.ComplianceParams{List: "list-100"}, nil},
		// The same report computed by scanning the live states (source=scan), for comparison.
		{"compliance-list100-collection100k-scan", report.ComplianceParams{List: "list-100", Scope: report.Scope{Collection: "all"}, Scan: true}, &scan},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rep, err := report.ComplianceReport(ctx, st, benchDB, "P01", c.p)
				if err != nil {
					b.Fatal(err)
				}
				if len(rep.Updates) != benchList || rep.Computers.Total != benchClients {
					b.Fatalf("report covers %d updates and %d clients", len(rep.Updates), rep.Computers.Total)
				}
				if c.keep != nil {
					*c.keep = rep
				}
			}
		})
	}
	if agg != nil && scan != nil && (!reflect.DeepEqual(agg.Updates, scan.Updates) || agg.Computers != scan.Computers) {
		b.Errorf("aggregates and scan disagree:\n agg  %+v\n scan %+v", agg, scan)
	}
	b.Run("deployment-states", func(b *testing.B) {
		q := fmt.Sprintf(`SELECT coalesce(s.state, 0) AS state, count() FROM
			(SELECT client FROM %[1]s.v_collection_members WHERE collection = 'all') AS m
			LEFT JOIN (SELECT client, state FROM %[1]s.v_live_state WHERE topic_type = 301 AND topic_id = 'dep-1') AS s ON s.client = m.client
			GROUP BY state ORDER BY state`, benchDB)
		for i := 0; i < b.N; i++ {
			if _, err := st.Query(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRebuild re-folds every projection from a raw log of 1,000 messages per client
// report shape (10,000 clients × 300 updates × 3 reports = 9 M raw messages), generated in the
// engine. The goal (DESIGN §5) is ≥ 500,000 messages/s.
func BenchmarkRebuild(b *testing.B) {
	st := openBenchStore(b)
	defer st.Close()
	ctx := context.Background()
	const db = "statepipe_benchrebuild"
	const clients, updates, reports = 10000, 300, 3
	if _, err := schema.Migrate(ctx, st, db); err != nil {
		b.Fatal(err)
	}
	res, err := st.Query(ctx, "SELECT count() FROM "+db+".state_messages")
	if err != nil {
		b.Fatal(err)
	}
	if res.Rows[0][0].(int64) < clients*updates*reports {
		// Client c's report r carries serials r*updates+1 … (r+1)*updates; the first is full.
		q := fmt.Sprintf(`INSERT INTO %s.raw_reports
			(client, report_serial, accepted_at, partition, offset, full_types,
			 serials, times, topic_types, topic_ids, states, errors, params, message_hashes)
			SELECT concat('client-', toString(c)), r * %[2]d + 1, now64(3), toInt32(c %% 8), toInt64(c * %[3]d + r),
			       if(r = 0, [500], []), arrayMap(u -> toUInt64(r * %[2]d + u + 1), range(%[2]d)),
			       arrayWithConstant(%[2]d, now64(3)), arrayWithConstant(%[2]d, toUInt16(500)),
			       arrayMap(u -> concat('upd-', leftPad(toString(u), 5, '0')), range(%[2]d)),
			       arrayMap(u -> toInt16(cityHash64(c, u, r) %% 4), range(%[2]d)), arrayWithConstant(%[2]d, toInt32(0)),
			       arrayWithConstant(%[2]d, CAST([], 'Array(String)')),
			       arrayMap(u -> toFixedString(substring(SHA256(concat(toString(c), '/', toString(r), '/', toString(u))), 1, 16), 16), range(%[2]d))
			FROM (SELECT intDiv(number, %[3]d) AS c, number %% %[3]d AS r FROM numbers(%[4]d))`, db, updates, reports, clients*reports)
		if err := st.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stats, err := projector.Rebuild(ctx, st, db, 7*24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(stats.MessagesPerSecond(), "msgs/s")
	}
}

// BenchmarkRestoreIndex30M restores the projector's in-memory index from the 30 M-state store
// (what a projector does at start) and reports states/s and the index's heap.
func BenchmarkRestoreIndex30M(b *testing.B) {
	st := openBenchStore(b)
	defer st.Close()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		x, err := projector.RestoreIndex(ctx, st, benchDB, 7*24*time.Hour, time.Now(), true)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		rows := x.Changed(index.Target{DB: benchDB})
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(x.Keys())/took.Seconds(), "states/s")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "index-MiB")
		b.ReportMetric(float64(len(rows)), "corrections")
		runtime.KeepAlive(x)
	}
}
