package report

import (
	"fmt"
	"io"
	"time"
)

// Backlog is the backlog report: per site of the tree (the site alone when standalone), what
// it has accepted and not folded, and per link up to the site answering, how fresh and how far
// behind what arrived here is. The pacing of enrolment, report cadence and deployment phases
// reads it; pacing is null until a site paces.
type Backlog struct {
	AsOf  time.Time     `json:"as_of"`
	Site  string        `json:"site"`
	Sites []BacklogSite `json:"sites"`
}

// BacklogSite is one site of the backlog report.
type BacklogSite struct {
	Site   string `json:"site"`
	Parent string `json:"parent,omitempty"`
	// LagRecords are reports accepted at the site and not folded there; LagSeconds is the age
	// of the oldest of them (now − the site's watermark, 0 when none wait).
	LagRecords int64         `json:"lag_records"`
	LagSeconds float64       `json:"lag_seconds"`
	Links      []BacklogLink `json:"links"`
	// Pacing is the site's pacing controller (null where no ingest paces, or not heard yet).
	Pacing *Pacing `json:"pacing"`
}

// Pacing is a site's pacing controller as the backlog report shows it: the rate of new
// enrolments it admits, the report interval it tells clients, its decision and why.
type Pacing struct {
	Mode           string  `json:"mode"` // auto, paused, manual, off
	Decision       string  `json:"decision"`
	Reason         string  `json:"reason"`
	EnrollRate     float64 `json:"enroll_rate"`
	ReportInterval float64 `json:"report_interval_seconds"`
	Pressure       float64 `json:"pressure"`
	Limiting       string  `json:"limiting,omitempty"`
	LagSeconds     float64 `json:"lag_seconds"`
	TargetSeconds  float64 `json:"target_seconds"`
	// At is when the controller took this decision (for a site below: as its last heartbeat
	// carried it).
	At time.Time `json:"at"`
}

// BacklogLink is the link from a site to its parent, as seen from the site answering.
type BacklogLink struct {
	Link string `json:"link"` // "S01->P01"
	// FreshnessSeconds is now − the watermark that reached the site answering (null before
	// any did).
	FreshnessSeconds *float64 `json:"freshness_seconds"`
	// BacklogRecords are reports accepted at the site and not yet counted in what it sent.
	BacklogRecords int64  `json:"backlog_records"`
	State          string `json:"state"`
}

// Uplink is a site's link to its parent as its own replicator sees it.
type Uplink struct {
	Parent         string
	Freshness      time.Duration // now − the watermark the parent acknowledged
	BacklogRecords int64
	State          string
}

// BacklogReport builds the backlog report from the tree (nil: a standalone site, with its own
// watermark from own); uplink, when the site has a parent, adds the answering site's link up;
// pacing, when ingest runs here, the answering site's pacing (the sites below carry theirs in
// their heartbeats).
func BacklogReport(site string, tree *Tree, own func() (time.Time, int64), uplink func() Uplink, pacing func() *Pacing) *Backlog {
	now := time.Now().UTC()
	if tree == nil {
		tree = &Tree{Self: site, Top: site, Origins: []string{site}, Sites: []SiteStatus{selfStatus(site, own, now)}}
	}
	b := &Backlog{AsOf: now, Site: site, Sites: []BacklogSite{}}
	for _, s := range tree.Sites {
		bs := BacklogSite{Site: s.Site, Parent: s.Parent, LagRecords: s.LagRecords, Links: []BacklogLink{}, Pacing: s.Pacing}
		if s.Site == site && pacing != nil {
			bs.Pacing = pacing()
		}
		if s.LagRecords > 0 && s.FreshnessSeconds != nil {
			bs.LagSeconds = *s.FreshnessSeconds
		}
		if s.LinkState != LinkLocal {
			bs.Links = append(bs.Links, BacklogLink{Link: s.Site + "->" + s.Parent, FreshnessSeconds: s.FreshnessSeconds,
				BacklogRecords: s.BacklogRecords, State: s.LinkState})
		} else if uplink != nil {
			u := uplink()
			f := u.Freshness.Seconds()
			bs.Parent = u.Parent
			bs.Links = append(bs.Links, BacklogLink{Link: s.Site + "->" + u.Parent, FreshnessSeconds: &f, BacklogRecords: u.BacklogRecords, State: u.State})
		}
		b.Sites = append(b.Sites, bs)
	}
	return b
}

func printBacklog(w io.Writer, b *Backlog) {
	header(w, "backlog", b.Site, b.AsOf)
	tw := columns(w)
	fmt.Fprintln(tw, "site\tlag records\tlag\tlink\tstate\tfreshness\tbacklog records\tadmitted/s\tdecision")
	for _, s := range b.Sites {
		link, state, fresh, backlog := "—", "—", "—", "—"
		if len(s.Links) > 0 {
			l := s.Links[0]
			link, state, backlog = l.Link, l.State, fmt.Sprint(l.BacklogRecords)
			if l.FreshnessSeconds != nil {
				fresh = Seconds(*l.FreshnessSeconds)
			} else {
				fresh = "never heard"
			}
		}
		rate, decision := "—", "—"
		if p := s.Pacing; p != nil {
			rate, decision = fmt.Sprintf("%.3g", p.EnrollRate), p.Decision
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Site, s.LagRecords, Seconds(s.LagSeconds), link, state, fresh, backlog, rate, decision)
	}
	_ = tw.Flush()
	for _, s := range b.Sites {
		if p := s.Pacing; p != nil {
			fmt.Fprintf(w, "pacing %s: %s, %s; report interval %s; %s\n", s.Site, p.Mode, p.Decision, Seconds(p.ReportInterval), p.Reason)
		}
	}
}

// printSites prints the sites an answer over a hierarchy counts, with their watermarks.
func printSites(w io.Writer, sites []SiteStatus) {
	if len(sites) == 0 {
		return
	}
	fmt.Fprintln(w, "sites counted:")
	tw := columns(w)
	fmt.Fprintln(tw, "  site\tlink\twatermark\tfreshness")
	for _, s := range sites {
		wm, fresh := "none yet", "—"
		if s.Watermark != nil {
			wm = s.Watermark.UTC().Format(time.RFC3339)
		}
		if s.FreshnessSeconds != nil {
			fresh = Seconds(*s.FreshnessSeconds)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Site, s.LinkState, wm, fresh)
	}
	_ = tw.Flush()
}

// Seconds renders a duration in seconds for people: 0.4 s, 12 s, 3m20s.
func Seconds(s float64) string {
	switch {
	case s < 10:
		return fmt.Sprintf("%.1f s", s)
	case s < 120:
		return fmt.Sprintf("%.0f s", s)
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
