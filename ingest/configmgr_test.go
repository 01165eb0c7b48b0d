package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

const cmHeader = `<ReportHeader><Identification><Machine><ClientID>GUID:7</ClientID></Machine></Identification>` +
	`<ReportDetails><ReportType>Delta</ReportType></ReportDetails></ReportHeader>`

func cmReport(msgs string) string {
	return `<Report>` + cmHeader + `<ReportBody>` + msgs + `</ReportBody></Report>`
}

func cmMessage(serial, typ, state string) string {
	return `<StateMessage MessageTime="20261111080100.000000+000" SerialNumber="` + serial + `"><Topic ID="u1" Type="` + typ + `"/><State ID="` + state + `"/></StateMessage>`
}

// postXML posts body to h over real HTTP and decodes the answer.
func postXML(t *testing.T, h http.Handler, body string) (int, schema.ConfigMgrAnswer) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a schema.ConfigMgrAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, a
}

// A batch is answered per document: what the translator refuses names its element, what the
// site refuses after translation names the element too (not the report's message index), a
// document of unmodelled messages is accepted with nothing written, and what is written is
// the translation with relayed serials and Via.
func TestConfigMgrAnswersPerDocument(t *testing.T) {
	var recs capture
	h, err := New(Config{Site: "P01", MaxBodyBytes: 1 << 20, MaxMessages: 10, ProduceTimeout: time.Second, SerialCacheBytes: 1 << 20}, &recs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cm := h.ConfigMgr()
	ok := cmReport(cmMessage("5", "401", "1") + cmMessage("6", "500", "2"))
	st, a := postXML(t, cm, ok)
	if st != 200 || a.Accepted != 1 || a.Documents[0].Messages != 1 || a.Documents[0].Skipped["401"] != 1 || a.Documents[0].Client != "GUID:7" {
		t.Fatalf("one document: %d %+v", st, a)
	}
	if len(recs.msgs) != 1 {
		t.Fatalf("%d records, want 1", len(recs.msgs))
	}
	var rep schema.Report
	if err := schema.DecodeReportLimits(recs.msgs[0].Value, &rep, schema.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if rep.Via != schema.ViaUnsigned || rep.Messages[0].Serial != schema.RelayBase(0)+6 {
		t.Errorf("written: via %q serial %d, want %q and RelayBase(0)+6", rep.Via, rep.Messages[0].Serial, schema.ViaUnsigned)
	}
	// Serial 6 again with other content: the site's 409, naming the document's element.
	reused := cmReport(cmMessage("5", "401", "1") + cmMessage("6", "500", "3"))
	batch := `<Reports>` + reused + cmReport(cmMessage("9", "402", "70")) + cmReport(cmMessage("10", "1001", "1")) + `</Reports>`
	st, a = postXML(t, cm, batch)
	if st != 207 || a.Accepted != 1 || a.Refused != 2 {
		t.Fatalf("batch: %d %+v, want 207 with 1 accepted and 2 refused", st, a)
	}
	want := []struct {
		status int
		field  string
	}{{409, "ReportBody/StateMessage[2]@SerialNumber"}, {400, "ReportBody/StateMessage[1]/State@ID"}, {200, ""}}
	for i, w := range want {
		d := a.Documents[i]
		field := ""
		if d.Error != nil {
			field = d.Error.Field
		}
		if d.Status != w.status || field != w.field {
			t.Errorf("document %d: %d %q, want %d %q (%+v)", i+1, d.Status, field, w.status, w.field, d.Error)
		}
	}
	if len(recs.msgs) != 1 {
		t.Errorf("%d records after the batch, want still 1 (nothing of a refused document)", len(recs.msgs))
	}
	// Not XML, or not XML's media type.
	if st, a = postXML(t, cm, `{"v":1}`); st != 400 || a.Error == nil || a.Error.Code != schema.CodeMalformed {
		t.Errorf("JSON posted as XML: %d %+v", st, a)
	}
	srv := httptest.NewServer(cm)
	defer srv.Close()
	resp, err := http.Post(srv.URL, schema.MediaJSON, bytes.NewReader([]byte(ok)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("application/json: %d, want 415", resp.StatusCode)
	}
}

func TestDocumentFieldNamesTheElement(t *testing.T) {
	for field, want := range map[string]string{
		"messages[1].serial":    "ReportBody/StateMessage[4]@SerialNumber",
		"messages[0].time":      "ReportBody/StateMessage[2]@MessageTime",
		"messages[1].topic_id":  "ReportBody/StateMessage[4]/Topic@ID",
		"messages[0].params[0]": "ReportBody/StateMessage[2]/UserParameters",
		"messages[7].serial":    "messages[7].serial", // no such message: kept
		"client":                "ReportHeader/Identification/Machine/ClientID",
		"site":                  "site",
	} {
		if got := documentField(field, []int{2, 4}); got != want {
			t.Errorf("%s: %s, want %s", field, got, want)
		}
	}
}
