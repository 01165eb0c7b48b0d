package projector

import (
	"errors"
	"flag"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Config tunes batching.
type Config struct {
	// Database is the site's ClickHouse database.
	Database string
	// Topic is the site's state topic (state.<site>): its partitions carry the aggregate
	// cells a member owns.
	Topic string
	// RefTopic is the site's reference-data topic (ref.<site>); records from it fold into the
	// ref_* tables, every other topic's records are reports.
	RefTopic string
	// BatchMessages flushes a batch once it holds this many state messages (default 200,000):
	// ClickHouse wants few large inserts; each insert creates a part.
	BatchMessages int
	// BatchWait flushes a non-empty batch this long after its first record (default 200 ms):
	// the bound on how long a quiet site waits to see a report.
	BatchWait time.Duration
	// RetryMax caps the back-off between attempts while the store is unavailable (default 5 s).
	RetryMax time.Duration
	// ExpiredCleanup is how long an expired update stays in the update lists the aggregates
	// count (default 7 days; the reports use the same setting).
	ExpiredCleanup time.Duration
	// RefPoll is how often reference data imported by other projector processes, and expiry
	// crossing the cleanup age, are looked for (default 2 s).
	RefPoll time.Duration
	// ResyncAfter is how old a serial gap may grow before the client is asked for a full
	// report (default 5 min; ConfigMgr waits 2 days). Zero disables gap-driven resync.
	ResyncAfter time.Duration
	// LagEvery is how often the group's lag is read from the broker (default 2 s).
	LagEvery time.Duration
}

// DefaultConfig returns the tuning defaults (the flags' defaults). Database, Topic and
// RefTopic are the site's: the caller sets them.
func DefaultConfig() Config {
	return Config{
		BatchMessages:  200000,
		BatchWait:      200 * time.Millisecond,
		RetryMax:       5 * time.Second,
		ExpiredCleanup: schema.DefaultExpiredCleanup,
		RefPoll:        2 * time.Second,
		ResyncAfter:    5 * time.Minute,
		LagEvery:       2 * time.Second,
	}
}

// RegisterFlags registers the batching flags under prefix, with DefaultConfig's values as
// defaults.
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.IntVar(&c.BatchMessages, prefix+"batch-messages", d.BatchMessages, "flush a batch at this many state messages")
	fs.DurationVar(&c.BatchWait, prefix+"batch-wait", d.BatchWait, "flush a non-empty batch after this long")
	fs.DurationVar(&c.RetryMax, prefix+"retry-max", d.RetryMax, "longest back-off while the store is unavailable")
	fs.DurationVar(&c.RefPoll, prefix+"ref-poll", d.RefPoll, "how often to look for reference data changes that alter aggregates")
	fs.DurationVar(&c.ResyncAfter, prefix+"resync-after", d.ResyncAfter, "ask a client for a full report when a gap in its serials is this old (0: never)")
	fs.DurationVar(&c.LagEvery, prefix+"lag-every", d.LagEvery, "how often to read the group's lag from the broker (statepipe_projector_lag_records)")
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Database == "":
		return errors.New("projector: database is required")
	case c.Topic == "":
		return errors.New("projector: topic is required")
	case c.BatchMessages < 1:
		return errors.New("projector: batch-messages must be at least 1")
	case c.BatchWait <= 0:
		return errors.New("projector: batch-wait must be positive")
	case c.RetryMax <= 0:
		return errors.New("projector: retry-max must be positive")
	case c.RefPoll < 0:
		return errors.New("projector: ref-poll must not be negative")
	}
	return nil
}

// withDefaults fills the settings whose zero value means "the default".
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ExpiredCleanup == 0 {
		c.ExpiredCleanup = d.ExpiredCleanup
	}
	if c.RefPoll == 0 {
		c.RefPoll = d.RefPoll
	}
	if c.LagEvery <= 0 {
		c.LagEvery = d.LagEvery
	}
	return c
}
