package projector

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// RebuildStats says what a rebuild did.
type RebuildStats struct {
	Messages int64         `json:"messages"` // distinct raw messages re-folded
	Duration time.Duration `json:"duration"`
}

// MessagesPerSecond is the rebuild's throughput.
func (s RebuildStats) MessagesPerSecond() float64 {
	return float64(s.Messages) / s.Duration.Seconds()
}

// derived lists every projection of the raw log with the SELECT that re-folds it from
// state_messages ({db} is the database). Each follows the same rules as package fold:
// greatest serial per key — read through FINAL, which keeps one row per message (client,
// serial, content: ddl/0010); a key has one message at its greatest serial (the projector
// refuses another message under a live key's serial), so the argMax has no ties (ordering by
// (serial, partition, offset) instead costs 5× the time);
// full-report markers = a report's smallest serial per full type (report_serial and
// full_types are the same in every delivery of a report); the client's greatest serial;
// successful scans.
var derived = []struct{ table, columns, query string }{
	{"current_state", "topic_type, topic_id, client, serial, state, error, time, accepted_at",
		`SELECT topic_type, topic_id, client, max(serial), argMax(state, serial), argMax(error, serial),
		        argMax(time, serial), argMax(accepted_at, serial)
		 FROM {db}.state_messages FINAL WHERE topic_type NOT IN (700, 701)
		 GROUP BY topic_type, topic_id, client`},
	{"full_reports", "client, topic_type, serial, accepted_at",
		`SELECT client, topic_type, report_serial, min(accepted_at)
		 FROM {db}.state_messages ARRAY JOIN full_types AS topic_type
		 GROUP BY client, topic_type, report_serial`},
	{"clients", "client, last_serial, last_seen, partition",
		`SELECT client, max(serial), argMax(accepted_at, serial), argMax(partition, (serial, offset)) FROM {db}.state_messages GROUP BY client`},
	{"client_scans", "client, serial, time",
		`SELECT client, max(serial), argMax(time, serial) FROM {db}.state_messages
		 WHERE ` + schema.SuccessfulScanSQL() + ` GROUP BY client`},
	{"scan_history", "client, serial, source, state, time",
		`SELECT client, serial, argMax(topic_id, offset), argMax(state, offset), argMax(time, offset) FROM {db}.state_messages
		 WHERE ` + schema.SuccessfulScanSQL() + ` GROUP BY client, serial`}, // the live table keeps the last inserted
}

// Rebuild re-derives every projection of database db from the raw message log into fresh
// tables and swaps them in atomically (EXCHANGE TABLES), then drops the old ones. The event
// log is the source of truth; the projections are disposable.
//
// Run it with the site's projector stopped: a batch folded while the rebuild reads would be
// in the old tables only. (Reference data is not derived: the ref_* tables are its log.)
// The aggregate tables are re-derived last from the rebuilt live state (RebuildAggregates),
// with expired updates leaving update lists after cleanup.
func Rebuild(ctx context.Context, ex schema.Store, db string, cleanup time.Duration) (RebuildStats, error) {
	start := time.Now()
	var st RebuildStats
	res, err := ex.Query(ctx, "SELECT count() FROM "+db+".state_messages FINAL")
	if err != nil {
		return st, fmt.Errorf("cannot count the raw log of %s: %w", db, err)
	}
	if err := res.Scan(0, &st.Messages); err != nil {
		return st, fmt.Errorf("cannot count the raw log of %s: %w", db, err)
	}
	for _, d := range derived {
		fresh := db + "." + d.table + "_rebuild"
		for _, q := range []string{
			"DROP TABLE IF EXISTS " + fresh,
			"CREATE TABLE " + fresh + " AS " + db + "." + d.table,
			"INSERT INTO " + fresh + " (" + d.columns + ") " + replaceDB(d.query, db) + " SETTINGS max_insert_threads = 2",
		} {
			if err := ex.Exec(ctx, q); err != nil {
				return st, fmt.Errorf("cannot rebuild %s.%s: %w", db, d.table, err)
			}
		}
	}
	for _, d := range derived {
		live, fresh := db+"."+d.table, db+"."+d.table+"_rebuild"
		if err := ex.Exec(ctx, "EXCHANGE TABLES "+live+" AND "+fresh); err != nil {
			return st, fmt.Errorf("cannot swap in rebuilt %s: %w", live, err)
		}
		if err := ex.Exec(ctx, "DROP TABLE "+fresh); err != nil {
			return st, fmt.Errorf("cannot drop replaced %s: %w", live, err)
		}
	}
	if err := RebuildAggregates(ctx, ex, db, cleanup); err != nil {
		return st, err
	}
	st.Duration = time.Since(start)
	return st, nil
}

func replaceDB(q, db string) string { return strings.ReplaceAll(q, "{db}", db) }
