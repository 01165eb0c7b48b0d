package kafka

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// KeySet mirrors a small compacted topic as the set of its keys that have a value: a record
// with a value adds its key (or replaces its value), a record without one (a tombstone)
// removes it. Every process that follows the topic reads all of it from the start, outside any
// consumer group.
type KeySet struct {
	mu   sync.RWMutex
	keys map[string]entry
}

type entry struct {
	at    time.Time // timestamp of the record that set it
	value []byte
}

// NewKeySet returns an empty set.
func NewKeySet() *KeySet { return &KeySet{keys: map[string]entry{}} }

// Get returns key's value and record timestamp, and whether it is in the set.
func (s *KeySet) Get(key string) ([]byte, time.Time, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.keys[key]
	return e.value, e.at, ok
}

// Has reports whether key is in the set.
func (s *KeySet) Has(key string) bool {
	_, ok := s.Since(key)
	return ok
}

// Since returns when key was added (its record's timestamp) and whether it is in the set.
func (s *KeySet) Since(key string) (time.Time, bool) {
	_, at, ok := s.Get(key)
	return at, ok
}

// Put sets key's value locally, ahead of its record coming back from the topic (the writer
// of a record sees its own write at once); a nil value removes the key.
func (s *KeySet) Put(key string, value []byte, at time.Time) {
	s.apply(Record{Key: []byte(key), Value: value, Time: at})
}

func (s *KeySet) apply(m Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Value == nil {
		delete(s.keys, string(m.Key))
		return
	}
	s.keys[string(m.Key)] = entry{at: m.Time, value: m.Value}
}

// Follow reads every partition of topic until ctx ends, applying each record.
func (s *KeySet) Follow(ctx context.Context, c Config, topic string, log *slog.Logger) error {
	return Follow(ctx, c, topic, s.apply, nil, 0, log)
}
