package ingest

import (
	"sync"

	"github.com/statepipe/statepipe/schema"
)

// RefOwners knows which reference-data keys ("<kind>/<id>") of the site's ref.<site> belong to
// a site above: those the replicator copied down carry the owning site in statepipe-origin
// (schema.HeaderOrigin); those imported at the site carry none. Feed it every record of
// ref.<site> from the start (Apply), and plug Owner into RefHandler.Owners, so that the site
// refuses imports of data it only holds a read-only copy of. It is safe for concurrent use;
// the zero value knows no owners.
type RefOwners struct {
	mu     sync.RWMutex
	owners map[string]string // key → owning site; absent: the local site's own (or unknown)
}

// Apply takes one record of ref.<site>, in topic order: the latest record of a key decides.
// A record with an origin names the key's owner; a record without one (imported at the
// site) or a tombstone makes the key the local site's again.
func (o *RefOwners) Apply(r Record) {
	origin := r.header(schema.HeaderOrigin)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(origin) == 0 || r.Value == nil {
		delete(o.owners, string(r.Key))
		return
	}
	if o.owners == nil {
		o.owners = map[string]string{}
	}
	o.owners[string(r.Key)] = string(origin)
}

// Owner returns the site that owns key, and whether another site's record holds it (false:
// the key is the local site's, or not known).
func (o *RefOwners) Owner(key string) (string, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	owner, ok := o.owners[key]
	return owner, ok
}
