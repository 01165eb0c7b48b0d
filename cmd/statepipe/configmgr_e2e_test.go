package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/statepipe/statepipe/report"
)

// A ConfigMgr state-system inbox imported through a gateway: the compliance, deployment and
// errors reports equal an oracle computed from the XML files alone — read here with
// encoding/xml, not with the configmgr package — under duplicated files, files out of serial
// order, skipped topic types, states later ConfigMgr versions added, four encodings and a
// refused file; a rerun sends nothing; a file refused for good folds nothing of itself.
func TestConfigMgrImportEqualsTheOracle(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	inbox := t.TempDir()
	g := newInbox(rand.New(rand.NewPCG(17, uint64(time.Now().UnixNano()))), s.code)
	g.write(t, inbox)
	for _, kind := range []string{"catalog", "lists", "collections", "deployments"} {
		s.importRef(kind, g.ref[kind]...)
	}

	work := t.TempDir()
	identity := filepath.Join(work, "gw.identity")
	if out, errOut, code := statepipe(t, "client", "enroll", "--gateway", "--url", s.url, "--site", s.code, "--id", "gw-"+s.code, "--out", identity); code != 0 {
		t.Fatalf("enroll --gateway: exit %d\n%s%s", code, out, errOut)
	}
	importOnce := func() (string, int) {
		out, errOut, code := statepipe(t, "configmgr", "import", "--url", s.url, "--identity", identity, "--quiet", inbox)
		return out + errOut, code
	}
	out, code := importOnce()
	want := fmt.Sprintf("imported %d files", len(g.files)-1)
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "1 refused") || !strings.Contains(out, "refused "+g.bad) ||
		!strings.Contains(out, "State@ID: 64 is out of range") {
		t.Fatalf("first import: exit %d, want 1 with %q, 1 refused (%s, State@ID):\n%s", code, want, g.bad, out)
	}
	// A rerun sends nothing again: the refused file is tried (and refused) again, alone.
	out, code = importOnce()
	if want := "imported 0 files (0 state messages, 0 B)"; code != 1 || !strings.Contains(out, want) ||
		!strings.Contains(out, fmt.Sprintf("%d already imported; 1 refused", len(g.files)-1)) {
		t.Fatalf("rerun: exit %d, want %q and %d already imported:\n%s", code, want, len(g.files)-1, out)
	}

	o := oracleOf(t, inbox, g)
	eventually(t, func() string {
		var rep report.Compliance
		if code := s.get("/v1/reports/compliance?list=cm-list&collection=cm-all", &rep); code != 200 {
			return fmt.Sprintf("compliance: %d", code)
		}
		got := map[string][4]int64{}
		for _, u := range rep.Updates {
			got[u.UpdateID] = [4]int64{u.Installed, u.Required, u.NotRequired, u.Unknown}
		}
		if !reflect.DeepEqual(got, o.compliance) {
			return fmt.Sprintf("compliance:\n got %v\nwant %v", got, o.compliance)
		}
		for _, d := range g.deps {
			var dep report.Deployment
			if code := s.get("/v1/reports/deployment?deployment="+url.QueryEscape(d.id), &dep); code != 200 {
				return fmt.Sprintf("deployment %s: %d", d.id, code)
			}
			got := map[int]int64{}
			for _, st := range dep.States {
				if st.Clients > 0 {
					got[st.State] = st.Clients
				}
			}
			if !reflect.DeepEqual(got, o.deployments[d.id]) {
				return fmt.Sprintf("deployment %s:\n got %v\nwant %v", d.id, got, o.deployments[d.id])
			}
		}
		var errs report.Errors
		if code := s.get("/v1/reports/errors", &errs); code != 200 {
			return fmt.Sprintf("errors: %d", code)
		}
		gotErr := map[int32]int64{}
		for _, e := range errs.Errors {
			gotErr[e.Error] = e.Machines
		}
		if !reflect.DeepEqual(gotErr, o.errors) {
			return fmt.Sprintf("errors:\n got %v\nwant %v", gotErr, o.errors)
		}
		var scanErrs report.Errors
		if code := s.get("/v1/reports/errors?topic=scan", &scanErrs); code != 200 {
			return fmt.Sprintf("scan errors: %d", code)
		}
		gotErr = map[int32]int64{}
		for _, e := range scanErrs.Errors {
			gotErr[e.Error] = e.Machines
		}
		if !reflect.DeepEqual(gotErr, o.scanErrors) {
			return fmt.Sprintf("scan errors:\n got %v\nwant %v", gotErr, o.scanErrors)
		}
		return ""
	})
	if len(o.errors) == 0 || len(o.scanErrors) == 0 || len(o.compliance) == 0 || o.skippedStates == 0 || o.skippedTypes == 0 {
		t.Fatalf("the inbox exercised too little: %d errors, %d scan errors, %d skipped states, %d skipped types", len(o.errors), len(o.scanErrors), o.skippedStates, o.skippedTypes)
	}
}

// cmInbox generates a ConfigMgr inbox and the reference data it reports against.
type cmInbox struct {
	r       *rand.Rand
	site    string
	updates []string
	deps    []cmDeployment
	clients []string
	files   map[string][]byte // name → content
	bad     string            // the file the site refuses
	ref     map[string][]string
}

type cmDeployment struct {
	id      string
	updates []string
	members map[string]bool
}

const cmSynced = "2026-11-10T18:00:00Z"

// cmHRESULTs are the failures enforcement messages carry, as ConfigMgr writes them.
var cmHRESULTs = []string{"0x80070643", "0x80240022", "0x80246007", "0x8024402C"}

func newInbox(r *rand.Rand, site string) *cmInbox {
	g := &cmInbox{r: r, site: site, files: map[string][]byte{}, ref: map[string][]string{}}
	for i := range 6 {
		id := fmt.Sprintf("%08x-1c3a-4e8b-9f21-6a7c0d5e3b%02d", 0x4d9b2f6e+i, i)
		g.updates = append(g.updates, id)
		g.ref["catalog"] = append(g.ref["catalog"], fmt.Sprintf(`{"id":%q,"article":"50466%02d","title":"update %d","first_synced":%q}`, id, i, i, cmSynced))
	}
	g.ref["lists"] = []string{fmt.Sprintf(`{"id":"cm-list","name":"ConfigMgr updates","updates":["%s"]}`, strings.Join(g.updates, `","`))}
	for i := range 30 {
		g.clients = append(g.clients, fmt.Sprintf("GUID:0b1e3f5a-7c9d-4e2f-8a1b-3c5d7e9f%04d", i))
	}
	g.ref["collections"] = []string{fmt.Sprintf(`{"id":"cm-all","name":"all","members":["%s"]}`, strings.Join(g.clients, `","`))}
	for d, span := range [][2]int{{0, 20}, {12, 30}} {
		dep := cmDeployment{id: fmt.Sprintf("{3C6D8A1F-2B4E-4F59-9A7C-1D2E3F4A5B6%d}", d), updates: g.updates[3*d : 3*d+3], members: map[string]bool{}}
		var members []string
		for _, c := range g.clients[span[0]:span[1]] {
			dep.members[c] = true
			members = append(members, c)
		}
		g.deps = append(g.deps, dep)
		coll := fmt.Sprintf("cm-dep-%d", d)
		g.ref["collections"] = append(g.ref["collections"], fmt.Sprintf(`{"id":%q,"name":%q,"members":["%s"]}`, coll, coll, strings.Join(members, `","`)))
		g.ref["deployments"] = append(g.ref["deployments"], fmt.Sprintf(`{"id":%q,"name":"dep %d","updates":["%s"],"collection":%q,"start":"2026-11-10T19:00:00Z","deadline":"2026-11-17T19:00:00Z","mandatory":true}`,
			dep.id, d, strings.Join(dep.updates, `","`), coll))
	}
	return g
}

// write writes the inbox: per client a full document then deltas, the files of all clients
// interleaved at random, some copied under a later name, and one refused file.
func (g *cmInbox) write(t *testing.T, dir string) {
	t.Helper()
	type doc struct {
		client string
		body   string
	}
	var docs []doc
	for i, c := range g.clients {
		serial := 1000*i + g.r.IntN(500) + 1
		next := func() int { serial += 1 + g.r.IntN(3); return serial } // ConfigMgr numbers other features' messages between
		var msgs []string
		if g.r.IntN(10) < 7 { // a scan after the updates' first synchronisation
			msgs = append(msgs, cmMsg(next(), 501, "{9A0B1C2D-3E4F-4A5B-8C6D-7E8F9A0B1C2D}", 3, "2026-11-11T08:00:00Z"))
		}
		for _, u := range g.updates {
			if g.r.IntN(5) > 0 {
				msgs = append(msgs, cmMsg(next(), 500, u, g.r.IntN(4), "2026-11-11T08:00:01Z", "200"))
			}
		}
		for _, d := range g.deps {
			if d.members[c] {
				msgs = append(msgs, cmMsg(next(), 300, d.id, g.r.IntN(4), "2026-11-11T08:00:02Z"), cmMsg(next(), 302, d.id, 2, "2026-11-11T08:00:02Z"))
			}
		}
		msgs = append(msgs, cmMsg(next(), 401, "ScopeId_1/Baseline_7", 2, "2026-11-11T08:00:03Z"))
		docs = append(docs, doc{c, cmDocument(c, "Full", msgs)})
		for range 1 + g.r.IntN(3) {
			msgs = msgs[:0]
			for range 1 + g.r.IntN(5) {
				switch k := g.r.IntN(10); {
				case k < 3:
					msgs = append(msgs, cmMsg(next(), 500, g.updates[g.r.IntN(len(g.updates))], 1+g.r.IntN(3), "2026-11-11T09:00:00Z", "200"))
				case k < 6:
					st, params := g.r.IntN(17), []string{"200"} // 15, 16: states later versions added
					if st == 11 || st == 14 || st > 14 {
						params = append(params, cmHRESULTs[g.r.IntN(len(cmHRESULTs))])
					}
					msgs = append(msgs, cmMsg(next(), 402, g.updates[g.r.IntN(len(g.updates))], st, "2026-11-11T09:10:00Z", params...))
				case k < 9:
					var mine []cmDeployment
					for _, d := range g.deps {
						if d.members[c] {
							mine = append(mine, d)
						}
					}
					if len(mine) == 0 {
						continue
					}
					st, params := g.r.IntN(13), []string(nil) // 11, 12: added states
					if st == 6 || st == 9 || st > 10 {
						params = []string{cmHRESULTs[g.r.IntN(len(cmHRESULTs))]}
					}
					msgs = append(msgs, cmMsg(next(), 301, mine[g.r.IntN(len(mine))].id, st, "2026-11-11T09:20:00Z", params...))
				case k < 10 && g.r.IntN(2) == 0: // a failed scan, its HRESULT among revision-like params
					msgs = append(msgs, cmMsg(next(), 501, "{9A0B1C2D-3E4F-4A5B-8C6D-7E8F9A0B1C2D}", 5, "2026-11-11T09:25:00Z",
						"7", cmHRESULTs[g.r.IntN(len(cmHRESULTs))]))
				default:
					msgs = append(msgs, cmMsg(next(), 1001, "ClientHealth", 1, "2026-11-11T09:30:00Z"))
				}
			}
			if len(msgs) > 0 {
				docs = append(docs, doc{c, cmDocument(c, "Delta", msgs)})
			}
		}
	}
	g.r.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] }) // serials out of file order too
	encodings := []string{"utf-16le", "utf-16be", "utf-8", "utf-8-bom"}
	n := 0
	put := func(content []byte) string {
		n++
		name := fmt.Sprintf("%08X.SMX", n)
		if n%2 == 0 {
			name = strings.ToLower(name)
		}
		g.files[name] = content
		return name
	}
	var written []string
	for i := 0; i < len(docs); {
		if i+1 < len(docs) && g.r.IntN(6) == 0 { // a batch of two documents in a wrapper
			written = append(written, put(encode("utf-8", "<Reports>"+strip(docs[i].body)+strip(docs[i+1].body)+"</Reports>")))
			i += 2
			continue
		}
		written = append(written, put(encode(encodings[g.r.IntN(len(encodings))], docs[i].body)))
		i++
	}
	for range 3 { // ConfigMgr resends: the same document again, under a new name
		put(g.files[written[g.r.IntN(len(written))]])
	}
	c := g.clients[0]
	g.bad = put(encode("utf-8", cmDocument(c, "Delta", []string{
		cmMsg(999999, 500, g.updates[0], 3, "2026-11-11T11:00:00Z"),
		cmMsg(1000000, 402, g.updates[0], 64, "2026-11-11T11:00:00Z"), // refused: the whole document is
	})))
	for name, content := range g.files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func cmMsg(serial, topicType int, id string, state int, at string, params ...string) string {
	tm, _ := time.Parse(time.RFC3339, at)
	var p string
	if len(params) > 0 {
		p = fmt.Sprintf(`<UserParameters Flags="0" Count="%d"><Param>%s</Param></UserParameters>`, len(params), strings.Join(params, "</Param><Param>"))
	}
	return fmt.Sprintf(`<StateMessage MessageTime="%s.000000+000" SerialNumber="%d"><Topic ID="%s" Type="%d" IDType="3"/><State ID="%d" Criticality="0"/>%s</StateMessage>`,
		tm.UTC().Format("20060102150405"), serial, id, topicType, state, p)
}

func cmDocument(client, kind string, msgs []string) string {
	return `<?xml version="1.0" encoding="UTF-16"?>` + "\r\n" + `<Report><ReportHeader><Identification><Machine><ClientInstalled>1</ClientInstalled><ClientType>1</ClientType><ClientID>` +
		client + `</ClientID><ClientVersion>5.00.9135.1000</ClientVersion><NetBIOSName>PC</NetBIOSName></Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent><ReportType>` +
		kind + `</ReportType><Date>2026-11-11T08:00:00Z</Date><Version>1.0</Version><Format>1.0</Format></ReportDetails></ReportHeader><ReportBody>` +
		strings.Join(msgs, "\r\n") + `</ReportBody></Report>` + "\r\n"
}

// strip drops a document's XML declaration, for a batch in a wrapper element.
func strip(doc string) string {
	_, rest, _ := strings.Cut(doc, "?>")
	return rest
}

// encode writes text in an encoding, with a byte order mark where ConfigMgr writes one.
func encode(enc, text string) []byte {
	switch enc {
	case "utf-8":
		return []byte(text)
	case "utf-8-bom":
		return append([]byte{0xEF, 0xBB, 0xBF}, text...)
	}
	units := utf16.Encode([]rune(text))
	out := []byte{0xFF, 0xFE}
	if enc == "utf-16be" {
		out = []byte{0xFE, 0xFF}
	}
	for _, u := range units {
		if enc == "utf-16be" {
			out = append(out, byte(u>>8), byte(u))
		} else {
			out = append(out, byte(u), byte(u>>8))
		}
	}
	return out
}

// cmOracle is what the reports must say.
type cmOracle struct {
	compliance                  map[string][4]int64 // update → installed, required, not required, unknown
	deployments                 map[string]map[int]int64
	errors, scanErrors          map[int32]int64 // HRESULT → machines, of enforcement (301, 402) and of scans (501)
	skippedStates, skippedTypes int
}

type cmKey struct {
	client, id string
	topic      int
}

type cmState struct {
	serial uint64
	state  int
	err    int32
}

// oracleOf reads every file of the inbox but the refused one with encoding/xml and folds it
// by DESIGN §3's rules: per key the state of the greatest serial; types statepipe does not
// model, and 301 and 402 states above its ranges, change nothing.
func oracleOf(t *testing.T, dir string, g *cmInbox) cmOracle {
	t.Helper()
	type message struct {
		Time   string `xml:"MessageTime,attr"`
		Serial uint64 `xml:"SerialNumber,attr"`
		Topic  struct {
			ID   string `xml:"ID,attr"`
			Type int    `xml:"Type,attr"`
		} `xml:"Topic"`
		State struct {
			ID int `xml:"ID,attr"`
		} `xml:"State"`
		Params []string `xml:"UserParameters>Param"`
	}
	type document struct {
		Client   string    `xml:"ReportHeader>Identification>Machine>ClientID"`
		Messages []message `xml:"ReportBody>StateMessage"`
	}
	live := map[cmKey]cmState{}
	o := cmOracle{compliance: map[string][4]int64{}, deployments: map[string]map[int]int64{}, errors: map[int32]int64{}, scanErrors: map[int32]int64{}}
	scannedOK := map[string]bool{} // clients with a completed scan (every one after the sync)
	for name := range g.files {
		if name == g.bad {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(bytes.NewReader(toUTF8(raw)))
		d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			se, ok := tok.(xml.StartElement)
			if !ok || se.Name.Local != "Report" {
				continue
			}
			var doc document
			if err := d.DecodeElement(&doc, &se); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, m := range doc.Messages {
				switch tt, st := m.Topic.Type, m.State.ID; {
				case tt != 300 && tt != 301 && tt != 302 && tt != 402 && tt != 500 && tt != 501:
					o.skippedTypes++
					continue
				case tt == 301 && st > 10, tt == 402 && st > 14:
					o.skippedStates++
					continue
				}
				if m.Topic.Type == 501 && (m.State.ID == 3 || m.State.ID == 6) {
					scannedOK[doc.Client] = true
				}
				var e int32
				if m.Topic.Type == 301 || m.Topic.Type == 402 || m.Topic.Type == 501 {
					for _, p := range m.Params {
						if v, err := strconv.ParseUint(strings.TrimPrefix(p, "0x"), 16, 32); err == nil && strings.HasPrefix(p, "0x") && v>>31 == 1 {
							e = int32(uint32(v))
							break
						}
					}
				}
				k := cmKey{doc.Client, m.Topic.ID, m.Topic.Type}
				if cur, ok := live[k]; !ok || m.Serial > cur.serial {
					live[k] = cmState{m.Serial, m.State.ID, e}
				}
			}
		}
	}
	for _, u := range g.updates {
		var c [4]int64
		for _, cl := range g.clients {
			st := live[cmKey{cl, u, 500}]
			scanned := scannedOK[cl]
			switch {
			case st.state == 3:
				c[0]++
			case st.state == 2:
				c[1]++
			case st.state == 1 || scanned:
				c[2]++
			default:
				c[3]++
			}
		}
		o.compliance[u] = c
	}
	for _, d := range g.deps {
		o.deployments[d.id] = map[int]int64{}
		for c := range d.members {
			o.deployments[d.id][live[cmKey{c, d.id, 301}].state]++
		}
	}
	for _, cl := range g.clients {
		codes, scanCodes := map[int32]bool{}, map[int32]bool{}
		for k, st := range live {
			switch {
			case k.client != cl || st.err == 0:
			case k.topic == 301 || k.topic == 402:
				codes[st.err] = true
			case k.topic == 501:
				scanCodes[st.err] = true
			}
		}
		for e := range codes {
			o.errors[e]++
		}
		for e := range scanCodes {
			o.scanErrors[e]++
		}
	}
	return o
}

// toUTF8 decodes a UTF-16 file (by its byte order mark) or drops a UTF-8 one's.
func toUTF8(b []byte) []byte {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		be := b[0] == 0xFE
		units := make([]uint16, 0, len(b)/2)
		for i := 2; i+1 < len(b); i += 2 {
			if be {
				units = append(units, uint16(b[i])<<8|uint16(b[i+1]))
			} else {
				units = append(units, uint16(b[i+1])<<8|uint16(b[i]))
			}
		}
		return []byte(string(utf16.Decode(units)))
	}
	return b
}
