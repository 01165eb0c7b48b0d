package index

import (
	"slices"

	"github.com/statepipe/statepipe/schema"
)

// Folding: a batch's reports move their clients' keys, markers and scans, and each touched
// client's contribution to its partition's cells is subtracted before and added after.

// Fold applies one report of partition p at offset. Call End after the batch's last Fold.
//
// A delta (no full report) writes cells in proportion to its own size: the per-key cells of
// the keys it changes move one by one, a newer scan moves only the cells of the keys whose
// update was first synchronised between the two scans (it reads the client's keys to find
// them), and only the client's summary cells (client count, scan, distinct errors, update
// lists) are recomputed, once per batch. A full report subtracts the client's whole
// contribution and adds it back at End.
func (x *Index) Fold(p int32, offset int64, r *schema.Report) {
	c := x.clients[r.Client]
	// A delta leaves the client's full-report markers as they are: only the keys it carries
	// move, and its scans (if newer) only the keys first synchronised between the two scans.
	delta := c != nil && len(r.FullTypes) == 0
	switch {
	case c == nil:
		c = x.loadClient(r.Client, p)
	case c.touched && c.partial && !delta:
		x.contributeKeys(c, -1) // the summary was subtracted already
		c.partial = false
	case c.touched:
	case !x.changes(c, r):
		// A heartbeat, a redelivery, a replay: nothing to subtract and add back.
		x.Seen(p, offset)
		return
	case delta:
		x.contributeSummary(c, -1)
		c.partial = true
	default:
		x.contribute(c, -1)
	}
	if !c.touched {
		c.touched = true
		x.touched = append(x.touched, c)
	}
	x.Seen(p, offset)
	if c.partial {
		x.applyScans(c, r)
		for i := range r.Messages {
			if m := &r.Messages[i]; m.TopicType.Keyed() {
				x.applyDelta(c, m.TopicType, m.TopicID, m.Serial, int16(m.State), m.Error)
			}
		}
		return
	}
	if len(r.FullTypes) > 0 {
		lowest := r.LowestSerial()
		for _, t := range r.FullTypes {
			c.setMarker(t, lowest)
		}
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		c.takeScan(m)
		if m.TopicType.Keyed() {
			x.apply(c, m.TopicType, m.TopicID, m.Serial, int16(m.State), m.Error)
		}
	}
}

// applyScans takes r's successful scans into client c's latest scan (the greatest serial; of
// equal serials the later message), and moves the per-key cells the new scan changes: a 500
// key in state 1–3 counts as scanned after its update's first synchronisation, or not,
// depending on the latest scan. The client's summary cells are recomputed at End.
func (x *Index) applyScans(c *client, r *schema.Report) {
	was := c.scanMs
	for i := range r.Messages {
		c.takeScan(&r.Messages[i])
	}
	if c.scanMs == was {
		return
	}
	var scopes []uint32
	pt := x.part(c.partition)
	for k, v := range c.keys {
		tt, update := k.topicType(), k.topic()
		d := x.scannedAt(c.scanMs, tt, update, v) - x.scannedAt(was, tt, update, v)
		if d == 0 {
			continue
		}
		if scopes == nil {
			scopes = x.scopes(c)
		}
		for _, s := range scopes {
			pt.add(cellKey{kind: kindState, topicType: tt, topic: update, state: v.state, scope: s}, 0, d)
		}
	}
}

// takeScan makes m the client's latest scan if it is a successful scan at least as new (the
// greatest serial; of equal serials the later message).
func (c *client) takeScan(m *schema.StateMessage) {
	if m.IsSuccessfulScan() && m.Serial >= c.scanSerial {
		c.scanSerial, c.scanMs = m.Serial, m.Time
	}
}

// newScan reports whether m is a successful scan that would change the client's latest one.
func (c *client) newScan(m *schema.StateMessage) bool {
	return m.IsSuccessfulScan() && (m.Serial > c.scanSerial || m.Serial == c.scanSerial && m.Time != c.scanMs)
}

// changes reports whether folding r would change anything of client c.
func (x *Index) changes(c *client, r *schema.Report) bool {
	if len(r.FullTypes) > 0 {
		lowest := r.LowestSerial()
		for _, t := range r.FullTypes {
			if lowest > c.marker(t) {
				return true
			}
		}
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		if c.newScan(m) {
			return true
		}
		if !m.TopicType.Keyed() || m.Serial < c.marker(m.TopicType) {
			continue
		}
		id, ok := x.ids[m.TopicID]
		if !ok {
			return true
		}
		old, ok := c.keys[makeTopicKey(m.TopicType, id)]
		if !ok || old.serial < m.Serial || old.serial == m.Serial && (old.state != int16(m.State) || old.errCode != m.Error) {
			return true
		}
	}
	return false
}

// End adds the contributions of the clients the batch touched.
func (x *Index) End() {
	for _, c := range x.touched {
		c.touched = false
		if c.partial {
			c.partial = false
			x.contributeSummary(c, 1)
		} else {
			x.contribute(c, 1)
		}
	}
	clear(x.touched)
	x.touched = x.touched[:0]
}

func (c *client) marker(tt schema.TopicType) uint64 {
	for _, m := range c.markers {
		if m.topicType == tt {
			return m.serial
		}
	}
	return 0
}

// setMarker raises the full-report marker of tt and removes the keys it replaced.
func (c *client) setMarker(tt schema.TopicType, serial uint64) {
	for i := range c.markers {
		if c.markers[i].topicType == tt {
			if serial <= c.markers[i].serial {
				return
			}
			c.markers[i].serial = serial
			c.dropBelow(tt, serial)
			return
		}
	}
	c.markers = append(c.markers, marker{tt, serial})
	c.dropBelow(tt, serial)
}

func (c *client) dropBelow(tt schema.TopicType, serial uint64) {
	for k, v := range c.keys {
		if k.topicType() == uint16(tt) && v.serial < serial {
			delete(c.keys, k)
		}
	}
}

// apply folds one keyed message: the greatest serial wins (of equal serials the later one, as
// in the store), and a key older than the type's full-report marker is not live.
// It returns the key, its live value before, whether it had one, and whether the live value
// changed.
func (x *Index) apply(c *client, tt schema.TopicType, topicID string, serial uint64, state int16, errCode int32) (k topicKey, old keyState, had, changed bool) {
	if serial < c.marker(tt) {
		return 0, keyState{}, false, false
	}
	k = makeTopicKey(tt, x.intern(topicID))
	old, had = c.keys[k]
	if had && old.serial > serial {
		return k, old, had, false
	}
	v := keyState{serial: serial, errCode: errCode, state: state}
	c.keys[k] = v
	c.maxSerial = max(c.maxSerial, serial)
	return k, old, had, !had || v != old
}

// applyDelta is apply for a client whose per-key cells move key by key: the cells of the
// key's old state are subtracted and those of its new state added.
func (x *Index) applyDelta(c *client, tt schema.TopicType, topicID string, serial uint64, state int16, errCode int32) {
	k, old, had, changed := x.apply(c, tt, topicID, serial, state, errCode)
	if !changed {
		return
	}
	scopes := x.scopes(c)
	pt := x.part(c.partition)
	if had {
		x.keyCells(pt, c, scopes, k, old, -1)
	}
	x.keyCells(pt, c, scopes, k, c.keys[k], 1)
}

// contribute adds sign × the client's contribution to its partition's cells.
func (x *Index) contribute(c *client, sign int64) {
	x.contributeKeys(c, sign)
	x.contributeSummary(c, sign)
}

// scopes returns the scopes client c counts in: the site (0) and its collections.
func (x *Index) scopes(c *client) []uint32 {
	scopes := append(append(x.scopesBuf[:0], 0), c.scopes...)
	x.scopesBuf = scopes
	return scopes
}

// contributeKeys adds sign × the per-key cells of every live key of the client.
func (x *Index) contributeKeys(c *client, sign int64) {
	pt := x.part(c.partition)
	scopes := x.scopes(c)
	for k, v := range c.keys {
		x.keyCells(pt, c, scopes, k, v, sign)
	}
}

// keyCells adds sign × one live key's cells: its state (and for 500 whether the client
// scanned after the update's first synchronisation), and its HRESULT per topic.
func (x *Index) keyCells(pt *part, c *client, scopes []uint32, k topicKey, v keyState, sign int64) {
	tt, topic := k.topicType(), k.topic()
	scanned := x.scannedAfter(c, tt, topic, v)
	for _, s := range scopes {
		pt.add(cellKey{kind: kindState, topicType: tt, topic: topic, state: v.state, scope: s}, sign, sign*scanned)
	}
	if v.errCode != 0 && schema.TopicType(tt).CountsErrors() {
		for _, s := range scopes {
			pt.add(cellKey{kind: kindError, topicType: tt, topic: topic, errCode: v.errCode, scope: s}, sign, 0)
		}
	}
}

// scannedAfter is 1 when a 500 key in state 1–3 belongs to a client whose latest successful
// scan is newer than the update's first synchronisation.
func (x *Index) scannedAfter(c *client, tt uint16, update uint32, v keyState) int64 {
	return x.scannedAt(c.scanMs, tt, update, v)
}

// scannedAt is scannedAfter for a latest successful scan at scanMs.
func (x *Index) scannedAt(scanMs int64, tt uint16, update uint32, v keyState) int64 {
	if tt == uint16(schema.TopicUpdateCompliance) && v.state >= 1 && v.state <= 3 {
		if u := x.update(update); u.inCatalog && scanMs > u.firstSynced {
			return 1
		}
	}
	return 0
}

// contributeSummary adds sign × the client's cells that depend on all its keys at once: the
// client count, its latest scan, the distinct HRESULTs it carries and its compliance with
// every update list.
func (x *Index) contributeSummary(c *client, sign int64) {
	pt := x.part(c.partition)
	scopes := x.scopes(c)
	for _, s := range scopes {
		pt.add(cellKey{kind: kindState, scope: s}, sign, 0)
		if c.scanSerial > 0 {
			pt.add(cellKey{kind: kindScan, scope: s, scanMs: c.scanMs}, sign, 0)
		}
	}
	clear(x.tallies)
	errs, scanErrs := x.errsBuf[:0], x.scanErrsBuf[:0]
	for k, v := range c.keys {
		tt, topic := k.topicType(), k.topic()
		if v.errCode != 0 {
			switch t := schema.TopicType(tt); {
			case t.CarriesErrors():
				if !slices.Contains(errs, v.errCode) {
					errs = append(errs, v.errCode)
				}
			case t == schema.TopicScan:
				if !slices.Contains(scanErrs, v.errCode) {
					scanErrs = append(scanErrs, v.errCode)
				}
			}
		}
		if tt == uint16(schema.TopicUpdateCompliance) {
			scanned := x.scannedAfter(c, tt, topic, v)
			for _, l := range x.update(topic).lists {
				t := &x.tallies[l]
				switch v.state {
				case schema.ComplianceRequired:
					t.required++
				case schema.ComplianceNotRequired, schema.ComplianceInstalled:
					t.satisfied++
				}
				t.scanned += int(scanned)
			}
		}
	}
	x.errsBuf, x.scanErrsBuf = errs, scanErrs
	for _, e := range errs {
		for _, s := range scopes {
			pt.add(cellKey{kind: kindError, errCode: e, scope: s}, sign, 0)
		}
	}
	// A scan error's distinct clients over every update source: topic type 501 with the empty
	// topic id, which no source has (a 501 message needs one).
	for _, e := range scanErrs {
		for _, s := range scopes {
			pt.add(cellKey{kind: kindError, topicType: uint16(schema.TopicScan), errCode: e, scope: s}, sign, 0)
		}
	}
	for i := range x.lists {
		l, t := &x.lists[i], x.tallies[i]
		if l.updates == 0 {
			continue // nothing to comply with: the report shows such a list as all unknown
		}
		status := int16(StatusUnknown)
		if t.required > 0 {
			status = StatusNonCompliant
		} else if inferable, _ := slices.BinarySearch(l.firstSynced, c.scanMs); t.satisfied+inferable-t.scanned == l.updates {
			// Compliant: every update of the list is satisfied, stated Not required or
			// Installed, or first synchronised before the latest scan and not stated 1–3
			// (inferred Not required, rule 3): inferable counts the latter with the stated
			// ones among them, which scanned takes away again.
			status = StatusCompliant
		}
		for _, s := range scopes {
			pt.add(cellKey{kind: kindList, topic: l.id, state: status, scope: s}, sign, 0)
		}
	}
}
