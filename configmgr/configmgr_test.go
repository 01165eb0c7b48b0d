package configmgr

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/text/encoding/unicode"

	"github.com/statepipe/statepipe/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.want.json from the translation (review the diff!)")

const site = "P01"

// golden is a fixture's expected Result, as testdata/NAME.want.json holds it.
type golden struct {
	Report  *schema.Report `json:"report"`
	Machine Machine        `json:"machine"`
	Skipped map[int]int    `json:"skipped,omitempty"`
}

// TestFixtures translates every testdata/*.smx and compares with its .want.json: the whole
// Result, exactly. Every report must pass Validate.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.smx")
	if err != nil || len(files) < 4 {
		t.Fatalf("want at least 4 fixtures, found %d (%v)", len(files), err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			doc := readFile(t, file)
			res, err := Translate(doc, site)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			if res.Report != nil {
				if err := res.Report.Validate(schema.Limits{}); err != nil {
					t.Fatalf("the report fails Validate: %v", err)
				}
			}
			got := golden{Report: res.Report, Machine: res.Machine, Skipped: res.Skipped}
			wantFile := strings.TrimSuffix(file, ".smx") + ".want.json"
			if *update {
				b, _ := json.MarshalIndent(got, "", " ")
				if err := os.WriteFile(wantFile, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			var want golden
			if err := json.Unmarshal(readFile(t, wantFile), &want); err != nil {
				t.Fatalf("%s: %v", wantFile, err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("the translation differs from %s\ngot:  %s\nwant: %s", wantFile, g, w)
			}
		})
	}
}

// TestFixtureEncodings keeps the fixtures in the encodings they exist to test: an editor that
// re-saves one as UTF-8 would silently drop the UTF-16 coverage.
func TestFixtureEncodings(t *testing.T) {
	for file, prefix := range map[string][]byte{
		"full_utf16le.smx":    {0xFF, 0xFE, '<', 0},
		"skipped_utf16be.smx": {0xFE, 0xFF, 0, '<'},
		"delta_utf8bom.smx":   {0xEF, 0xBB, 0xBF, '<'},
		"delta_utf8.smx":      []byte("<?xml"),
	} {
		if b := readFile(t, filepath.Join("testdata", file)); !bytes.HasPrefix(b, prefix) {
			t.Errorf("%s starts % X, want % X", file, b[:min(len(b), 4)], prefix)
		}
	}
}

// TestUTF16WithoutBOM: the same document as UTF-8, UTF-16LE and UTF-16BE without a BOM
// translates the same.
func TestUTF16WithoutBOM(t *testing.T) {
	doc := readFile(t, "testdata/delta_utf8.smx")
	want, err := Translate(doc, site)
	if err != nil {
		t.Fatal(err)
	}
	for name, order := range map[string]unicode.Endianness{"LE": unicode.LittleEndian, "BE": unicode.BigEndian} {
		enc, err := unicode.UTF16(order, unicode.IgnoreBOM).NewEncoder().Bytes(doc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Translate(enc, site)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s without BOM: %+v, want %+v", name, got.Report, want.Report)
		}
	}
}

// TestSkippedOnly: a document of unmodelled types only is no report and no error.
func TestSkippedOnly(t *testing.T) {
	res, err := Translate(readFile(t, "testdata/skipped_utf16be.smx"), site)
	if err != nil {
		t.Fatal(err)
	}
	if res.Report != nil {
		t.Errorf("Report = %+v, want nil", res.Report)
	}
	if want := map[int]int{400: 2, 401: 1, 1001: 1}; !reflect.DeepEqual(res.Skipped, want) {
		t.Errorf("Skipped = %v, want %v", res.Skipped, want)
	}
	if res.Machine.NetBIOSName != "WKS-0042" {
		t.Errorf("Machine = %+v", res.Machine)
	}
}

// TestTopicTable keeps the package doc's table of topic types true to schema: the same
// modelled types, the same state counts.
func TestTopicTable(t *testing.T) {
	documented := map[schema.TopicType]int{300: 4, 301: 11, 302: 4, 402: 15, 500: 4, 501: 7, 700: 1, 701: 1}
	for tt := schema.TopicType(0); tt < 0xFFFF; tt++ {
		n, ok := documented[tt]
		switch {
		case ok != tt.Known():
			t.Errorf("topic type %d: documented %v, schema knows it %v", tt, ok, tt.Known())
		case ok && tt.StateCount() != n:
			t.Errorf("topic type %d: documented states 0–%d, schema 0–%d", tt, n-1, tt.StateCount()-1)
		case ok && tt.CarriesErrors() != (tt == 301 || tt == 402):
			t.Errorf("topic type %d: CarriesErrors %v disagrees with the doc", tt, tt.CarriesErrors())
		case ok && tt.CountsErrors() != (tt == 301 || tt == 402 || tt == 501):
			t.Errorf("topic type %d: CountsErrors %v disagrees with the doc", tt, tt.CountsErrors())
		}
	}
}

const (
	header = `<ReportHeader><Identification><Machine><ClientID>GUID:1af488d8-7b42-4842-a4bd-b3a2842bbc42</ClientID></Machine></Identification>` +
		`<ReportDetails><ReportContent>State Message Data</ReportContent><ReportType>Delta</ReportType></ReportDetails></ReportHeader>`
	msg = `<StateMessage MessageTime="20240311084510.250000+000" SerialNumber="1"><Topic ID="u1" Type="402" IDType="3"/><State ID="11" Criticality="0"/>` +
		`<UserParameters Flags="0" Count="1"><Param>0x80070643</Param></UserParameters></StateMessage>`
)

// report is a document of the header and the body's StateMessage elements.
func report(header, body string) string {
	return `<?xml version="1.0" encoding="UTF-16"?><Report>` + header + `<ReportBody>` + body + `</ReportBody></Report>`
}

// withMsg is report(header, msg) with msg edited by pairs of old, new strings.
func withMsg(pairs ...string) string {
	return report(header, strings.NewReplacer(pairs...).Replace(msg))
}

// withHeader is report(header, msg) with the header edited by pairs of old, new strings.
func withHeader(pairs ...string) string {
	return report(strings.NewReplacer(pairs...).Replace(header), msg)
}

// TestBaseDocument: the documents the error cases edit are good to begin with.
func TestBaseDocument(t *testing.T) {
	res, err := Translate([]byte(withMsg()), site)
	if err != nil {
		t.Fatal(err)
	}
	want := []schema.StateMessage{{Serial: 1, Time: 1710146710250, TopicType: 402, TopicID: "u1", State: 11, Error: -2147023293, Params: []string{"0x80070643"}}}
	if res.Report == nil || !reflect.DeepEqual(res.Report.Messages, want) || res.Report.FullTypes != nil {
		t.Fatalf("got %+v, want messages %+v", res.Report, want)
	}
}

func TestErrors(t *testing.T) {
	long := strings.Repeat("x", 129)
	m2 := msgSerial
	deep := strings.Repeat("<x>", 30) + strings.Repeat("</x>", 30)
	cases := []struct {
		name       string
		doc        string
		class      error
		path, attr string
		reason     string // a part of the reason
	}{
		// Input and XML.
		{"empty", "", ErrMissing, "Report", "", "no Report element"},
		{"unclosed", `<Report><ReportHeader>`, ErrMalformed, "ReportHeader", "", "malformed XML"},
		{"mismatched tags", withMsg(`<State ID="11" Criticality="0"/>`, `<State ID="11"></Topic>`), ErrMalformed, "ReportBody/StateMessage[1]/State", "", "malformed XML"},
		{"odd UTF-16", "\xFF\xFE<\x00R", ErrMalformed, "Report", "", "odd number"},
		{"declared Latin-1", strings.Replace(withMsg(), "UTF-16", "ISO-8859-1", 1), ErrMalformed, "Report", "", `"ISO-8859-1"`},
		{"invalid UTF-8", withMsg(`ID="u1"`, "ID=\"u\xff\""), ErrMalformed, "ReportBody/StateMessage[1]", "", "UTF-8"},
		{"root not Report", `<Inventory/>`, ErrMalformed, "Report", "", "<Inventory>"},
		{"two documents", withMsg() + withMsg(), ErrMalformed, "Report", "", "TranslateBatch"},
		{"text outside", withMsg() + "trailing", ErrMalformed, "Report", "", "outside the Report"},
		{"too deep", withMsg(`<State ID="11" Criticality="0"/>`, `<State ID="11" Criticality="0"/><StateDetails>`+deep+`</StateDetails>`), ErrTooLarge,
			"ReportBody/StateMessage[1]/StateDetails" + strings.Repeat("/x", 29), "", "MaxDepth"},

		// Header.
		{"no header", report("", msg), ErrMissing, "ReportHeader", "", "missing"},
		{"no body", `<Report>` + header + `</Report>`, ErrMissing, "ReportBody", "", "missing"},
		{"two headers", report(header+header, msg), ErrInvalid, "ReportHeader", "", "more than once"},
		{"no Identification", withHeader(`<Identification>`, `<X>`, `</Identification>`, `</X>`), ErrMissing, "ReportHeader/Identification", "", "missing"},
		{"no Machine", withHeader(`<Machine>`, `<Computer>`, `</Machine>`, `</Computer>`), ErrMissing, "ReportHeader/Identification/Machine", "", "missing"},
		{"no ClientID", withHeader(`ClientID>`, `ClientGUID>`), ErrMissing, "ReportHeader/Identification/Machine/ClientID", "", "missing"},
		{"empty ClientID", withHeader(`GUID:1af488d8-7b42-4842-a4bd-b3a2842bbc42`, "  \n "), ErrMissing, "ReportHeader/Identification/Machine/ClientID", "", "empty"},
		{"ClientID control", withHeader(`GUID:1af4`, `GUID:1&#127;af4`), ErrInvalid, "ReportHeader/Identification/Machine/ClientID", "", "control character"},
		{"ClientID C1 control", withHeader(`GUID:1af4`, `GUID:1&#x85;af4`), ErrInvalid, "ReportHeader/Identification/Machine/ClientID", "", "control character"},
		{"ClientID too long", withHeader(`GUID:1af488d8-7b42-4842-a4bd-b3a2842bbc42`, long), ErrInvalid, "ReportHeader/Identification/Machine/ClientID", "", "at most 128"},
		{"ClientID element", withHeader(`GUID:1af4`, `<b/>GUID:1af4`), ErrInvalid, "ReportHeader/Identification/Machine/ClientID", "", "holds the element <b>"},
		{"two ClientIDs", withHeader(`</Machine>`, `<ClientID>GUID:2</ClientID></Machine>`), ErrInvalid, "ReportHeader/Identification/Machine/ClientID", "", "more than once"},
		{"no ReportDetails", withHeader(`ReportDetails>`, `Details>`), ErrMissing, "ReportHeader/ReportDetails", "", "missing"},
		{"no ReportType", withHeader(`<ReportType>Delta</ReportType>`, ``), ErrMissing, "ReportHeader/ReportDetails/ReportType", "", "missing"},
		{"ReportType Partial", withHeader(`>Delta<`, `>Partial<`), ErrInvalid, "ReportHeader/ReportDetails/ReportType", "", `"Partial": want Full or Delta`},
		{"ReportContent", withHeader(`State Message Data`, `Hardware Inventory`), ErrInvalid, "ReportHeader/ReportDetails/ReportContent", "", "not a state message report"},

		// Messages.
		{"no messages", report(header, ""), ErrMissing, "ReportBody/StateMessage", "", "at least one"},
		{"no SerialNumber", withMsg(` SerialNumber="1"`, ``), ErrMissing, "ReportBody/StateMessage[1]", "SerialNumber", "missing"},
		{"SerialNumber abc", withMsg(`SerialNumber="1"`, `SerialNumber="abc"`), ErrInvalid, "ReportBody/StateMessage[1]", "SerialNumber", `"abc" is not a serial number`},
		{"SerialNumber 0", withMsg(`SerialNumber="1"`, `SerialNumber="0"`), ErrInvalid, "ReportBody/StateMessage[1]", "SerialNumber", "from 1 to 2^40"},
		{"SerialNumber 2^40", withMsg(`SerialNumber="1"`, `SerialNumber="1099511627776"`), ErrInvalid, "ReportBody/StateMessage[1]", "SerialNumber", "from 1 to 2^40"},
		{"SerialNumber negative", withMsg(`SerialNumber="1"`, `SerialNumber="-1"`), ErrInvalid, "ReportBody/StateMessage[1]", "SerialNumber", `"-1"`},
		{"SerialNumber 2^64", withMsg(`SerialNumber="1"`, `SerialNumber="18446744073709551616"`), ErrInvalid, "ReportBody/StateMessage[1]", "SerialNumber", "2^40"},
		{"SerialNumber twice", withMsg(`SerialNumber="1"`, `SerialNumber="1" SerialNumber="2"`), ErrInvalid, "ReportBody/StateMessage[1]", "SerialNumber", "more than once"},
		{"duplicate serial", report(header, m2("7")+m2("8")+m2("7")), ErrInvalid, "ReportBody/StateMessage[3]", "SerialNumber", "7 repeats the serial of StateMessage[1]"},
		{"no MessageTime", withMsg(`MessageTime="20240311084510.250000+000" `, ``), ErrMissing, "ReportBody/StateMessage[1]", "MessageTime", "missing"},
		{"MessageTime text", withMsg(`20240311084510.250000+000`, `yesterday`), ErrInvalid, "ReportBody/StateMessage[1]", "MessageTime", `"yesterday": not a WMI datetime`},
		{"MessageTime month 13", withMsg(`20240311084510`, `20241311084510`), ErrInvalid, "ReportBody/StateMessage[1]", "MessageTime", "not a valid WMI datetime"},
		{"MessageTime 31 April", withMsg(`20240311084510`, `20240431084510`), ErrInvalid, "ReportBody/StateMessage[1]", "MessageTime", "not a valid WMI datetime"},
		{"MessageTime wildcard", withMsg(`20240311084510`, `2024031108451*`), ErrInvalid, "ReportBody/StateMessage[1]", "MessageTime", "not a valid WMI datetime"},
		{"MessageTime year 2400", withMsg(`20240311084510.250000+000`, `2400-01-01T00:00:00Z`), ErrInvalid, "ReportBody/StateMessage[1]", "MessageTime", "out of range"},
		{"MessageTime year 1601", withMsg(`20240311084510`, `16010101000000`), ErrInvalid, "ReportBody/StateMessage[1]", "MessageTime", "out of range"},
		{"no Topic", withMsg(`<Topic ID="u1" Type="402" IDType="3"/>`, ``), ErrMissing, "ReportBody/StateMessage[1]/Topic", "", "missing"},
		{"two Topics", withMsg(`<State `, `<Topic ID="u2" Type="402"/><State `), ErrInvalid, "ReportBody/StateMessage[1]/Topic", "", "more than once"},
		{"no Topic Type", withMsg(` Type="402"`, ``), ErrMissing, "ReportBody/StateMessage[1]/Topic", "Type", "missing"},
		{"Topic Type abc", withMsg(`Type="402"`, `Type="abc"`), ErrInvalid, "ReportBody/StateMessage[1]/Topic", "Type", `"abc" is not a topic type`},
		{"Topic Type 2^32", withMsg(`Type="402"`, `Type="4294967296"`), ErrInvalid, "ReportBody/StateMessage[1]/Topic", "Type", "uint32"},
		{"no Topic ID", withMsg(`ID="u1" `, ``), ErrMissing, "ReportBody/StateMessage[1]/Topic", "ID", "required for topic type 402"},
		{"Topic ID too long", withMsg(`ID="u1"`, `ID="`+long+`"`), ErrInvalid, "ReportBody/StateMessage[1]/Topic", "ID", "at most 128"},
		{"Topic ID control", withMsg(`ID="u1"`, `ID="u&#x9;1"`), ErrInvalid, "ReportBody/StateMessage[1]/Topic", "ID", "control character"},
		{"no State", withMsg(`<State ID="11" Criticality="0"/>`, ``), ErrMissing, "ReportBody/StateMessage[1]/State", "", "missing"},
		{"no State ID", withMsg(`State ID="11"`, `State`), ErrMissing, "ReportBody/StateMessage[1]/State", "ID", "missing"},
		{"State ID x", withMsg(`State ID="11"`, `State ID="x"`), ErrInvalid, "ReportBody/StateMessage[1]/State", "ID", `"x" is not a number`},
		{"State ID 64", withMsg(`State ID="11"`, `State ID="64"`), ErrInvalid, "ReportBody/StateMessage[1]/State", "ID", "64 is out of range for topic type 402 (0–14; 15–63"},
		{"State ID -1", withMsg(`State ID="11"`, `State ID="-1"`), ErrInvalid, "ReportBody/StateMessage[1]/State", "ID", "-1 is out of range"},
		{"State ID huge", withMsg(`State ID="11"`, `State ID="99999999999999999999"`), ErrInvalid, "ReportBody/StateMessage[1]/State", "ID", "out of range"},
		{"State 4 of 500", withMsg(`Type="402"`, `Type="500"`, `State ID="11"`, `State ID="4"`), ErrInvalid, "ReportBody/StateMessage[1]/State", "ID", "4 is out of range for topic type 500 (0–3)"},
		{"State 1 of 701", withMsg(`Type="402"`, `Type="701"`), ErrInvalid, "ReportBody/StateMessage[1]/State", "ID", "out of range for topic type 701 (0–0)"},
		{"17 params", withMsg(`<Param>0x80070643</Param>`, strings.Repeat(`<Param>1</Param>`, 17)), ErrTooLarge, "ReportBody/StateMessage[1]/UserParameters", "", "more than 16"},
		{"long param", withMsg(`<Param>0x80070643</Param>`, `<Param>1</Param><Param>`+strings.Repeat("p", 1025)+`</Param>`), ErrTooLarge, "ReportBody/StateMessage[1]/UserParameters/Param[2]", "", "1025 bytes"},
		{"param element", withMsg(`<Param>0x80070643</Param>`, `<Param>1</Param><Param><v>2</v></Param>`), ErrInvalid, "ReportBody/StateMessage[1]/UserParameters/Param[2]", "", "holds the element <v>"},
		{"two UserParameters", withMsg(`</StateMessage>`, `<UserParameters/></StateMessage>`), ErrInvalid, "ReportBody/StateMessage[1]/UserParameters", "", "more than once"},
		{"second message", report(header, m2("1")+m2("2")+strings.Replace(m2("3"), `ID="11"`, `ID="64"`, 1)), ErrInvalid, "ReportBody/StateMessage[3]/State", "ID", "64 is out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Translate([]byte(c.doc), site)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error; result %+v", err, err, res.Report)
			}
			if !errors.Is(err, c.class) || e.Path != c.path || e.Attr != c.attr || !strings.Contains(e.Reason, c.reason) {
				t.Errorf("err = %q (class %v)\nwant path %q, attr %q, class %v, reason containing %q", err, e.Err, c.path, c.attr, c.class, c.reason)
			}
			if !reflect.DeepEqual(res, Result{}) {
				t.Errorf("with an error the result is %+v, want zero", res)
			}
		})
	}
}

// TestErrorText pins the form of an error message.
func TestErrorText(t *testing.T) {
	body := msgSerial("3") + msgSerial("2") + strings.Replace(msgSerial("1"), `State ID="11"`, `State ID="64"`, 1)
	_, err := Translate([]byte(report(header, body)), site)
	const want = "ReportBody/StateMessage[3]/State@ID: 64 is out of range for topic type 402 (0–14; 15–63, states later ConfigMgr versions added, are skipped)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant    %s", err, want)
	}
}

// msgSerial is msg with another serial number.
func msgSerial(serial string) string {
	return strings.Replace(msg, `SerialNumber="1"`, `SerialNumber="`+serial+`"`, 1)
}

func TestLimits(t *testing.T) {
	t.Run("input size", func(t *testing.T) {
		doc := make([]byte, MaxInputBytes+1)
		_, err := Translate(doc, site)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "MaxInputBytes") {
			t.Errorf("Translate: err = %v, want ErrTooLarge naming MaxInputBytes", err)
		}
		_, errs := TranslateBatch(doc, site)
		if len(errs) != 1 || !errors.Is(errs[0], ErrTooLarge) {
			t.Errorf("TranslateBatch: errs = %v, want one ErrTooLarge", errs)
		}
	})
	t.Run("messages", func(t *testing.T) {
		// Messages of a skipped type are the smallest that are not an error.
		const skipped = `<StateMessage><Topic Type="400"/></StateMessage>`
		n := schema.DefaultLimits.MaxMessages
		res, err := Translate([]byte(report(header, strings.Repeat(skipped, n))), site)
		if err != nil || res.Skipped[400] != n {
			t.Fatalf("%d messages: err %v, skipped %v", n, err, res.Skipped)
		}
		_, err = Translate([]byte(report(header, strings.Repeat(skipped, n+1))), site)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrTooLarge) || e.Path != msgPath(n+1, "") {
			t.Errorf("err = %v, want ErrTooLarge at StateMessage[%d]", err, n+1)
		}
	})
	t.Run("depth", func(t *testing.T) {
		// Report(1)/ReportBody/StateMessage/StateDetails(4) + 28 = 32 levels: allowed.
		ok := strings.Repeat("<x>", 28) + strings.Repeat("</x>", 28)
		doc := withMsg(`</StateMessage>`, `<StateDetails>`+ok+`</StateDetails></StateMessage>`)
		if _, err := Translate([]byte(doc), site); err != nil {
			t.Errorf("32 levels: %v", err)
		}
		// A nest as deep as the input is long stops the reading at level 33: in a batch, the
		// documents after it are not read.
		deep := withMsg(`</StateMessage>`, `<StateDetails>`+strings.Repeat("<x>", 1<<20)+`</StateMessage>`)
		results, errs := TranslateBatch([]byte(withMsg()+deep+withMsg()), site)
		if len(results) != 2 || errs[0] != nil || !errors.Is(errs[1], ErrTooLarge) {
			t.Errorf("batch with a deep document: %d results, errs %v", len(results), errs)
		}
	})
}

func TestSite(t *testing.T) {
	for _, s := range []string{"", "P\x01", strings.Repeat("s", 129)} {
		_, err := Translate([]byte(withMsg()), s)
		var e *Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("site %q: err = %v, want a plain error", s, err)
		}
		if res, errs := TranslateBatch([]byte(withMsg()), s); len(res) != 1 || len(errs) != 1 || errs[0] == nil {
			t.Errorf("batch, site %q: %v", s, errs)
		}
	}
}

func TestFull(t *testing.T) {
	doc := withHeader(`>Delta<`, `>full<`)
	res, err := Translate([]byte(doc), site)
	if err != nil {
		t.Fatal(err)
	}
	if want := []schema.TopicType{402}; !reflect.DeepEqual(res.Report.FullTypes, want) {
		t.Errorf("FullTypes = %v, want %v", res.Report.FullTypes, want)
	}
	// Unkeyed and skipped types are never full.
	doc = report(strings.Replace(header, ">Delta<", ">Full<", 1),
		strings.NewReplacer(`Type="402"`, `Type="701"`, `ID="11"`, `ID="0"`).Replace(msg)+
			strings.NewReplacer(`Type="402"`, `Type="400"`, `SerialNumber="1"`, `SerialNumber="2"`).Replace(msg))
	res, err = Translate([]byte(doc), site)
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.FullTypes != nil || res.Report.Messages[0].TopicID != "" || res.Skipped[400] != 1 {
		t.Errorf("got %+v, skipped %v; want no full types, no topic id for 701, 400 skipped", res.Report, res.Skipped)
	}
}

// TestAddedStates: states later ConfigMgr versions added to 301 and 402 are skipped and
// counted, the type is then not full, and the other messages keep their elements' numbers.
func TestAddedStates(t *testing.T) {
	full := strings.Replace(header, ">Delta<", ">Full<", 1)
	dep := strings.NewReplacer(`Type="402"`, `Type="301"`, `ID="u1"`, `ID="d1"`, `ID="11"`, `ID="11"`).Replace(msg) // 301 state 11
	doc := report(full, msgSerial("1")+strings.Replace(dep, `SerialNumber="1"`, `SerialNumber="2"`, 1)+
		strings.NewReplacer(`SerialNumber="1"`, `SerialNumber="3"`, `ID="11"`, `ID="15"`).Replace(msg)+
		strings.NewReplacer(`SerialNumber="1"`, `SerialNumber="4"`, `Type="402"`, `Type="500"`, `ID="11"`, `ID="2"`).Replace(msg))
	res, err := Translate([]byte(doc), site)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"301/11": 1, "402/15": 1}; !reflect.DeepEqual(res.SkippedStates, want) {
		t.Errorf("SkippedStates = %v, want %v", res.SkippedStates, want)
	}
	if want := []schema.TopicType{500}; !reflect.DeepEqual(res.Report.FullTypes, want) {
		t.Errorf("FullTypes = %v, want %v (402 had a skipped state)", res.Report.FullTypes, want)
	}
	if want := []int{1, 4}; !reflect.DeepEqual(res.Elements, want) || len(res.Report.Messages) != 2 {
		t.Errorf("Elements = %v, want %v; messages %+v", res.Elements, want, res.Report.Messages)
	}
	// Only the enforcement types take added states.
	if _, err := Translate([]byte(withMsg(`Type="402"`, `Type="302"`, `State ID="11"`, `State ID="5"`)), site); err == nil {
		t.Error("302 state 5: no error")
	}
}

func TestBatch(t *testing.T) {
	full := readFile(t, "testdata/full_utf16le.smx")
	single, err := Translate(full, site)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("concatenated UTF-16", func(t *testing.T) {
		body := append(append([]byte{}, full...), full...) // two BOMs, two declarations
		results, errs := TranslateBatch(body, site)
		if len(results) != 2 || errs[0] != nil || errs[1] != nil {
			t.Fatalf("got %d results, errs %v", len(results), errs)
		}
		for i := range results {
			if !reflect.DeepEqual(results[i], single) {
				t.Errorf("results[%d] differs from Translate's", i)
			}
		}
	})
	good, bad := withMsg(), withMsg(`State ID="11"`, `State ID="99"`)
	t.Run("wrapped, one bad", func(t *testing.T) {
		strip := func(s string) string { return s[strings.Index(s, "<Report>"):] }
		body := `<?xml version="1.0"?><Reports>` + strip(good) + "\n" + strip(bad) + "<!-- c -->" + strip(good) + `</Reports>`
		results, errs := TranslateBatch([]byte(body), site)
		if len(results) != 3 || len(errs) != 3 {
			t.Fatalf("got %d results and %d errs, want 3", len(results), len(errs))
		}
		if errs[0] != nil || errs[2] != nil || results[0].Report == nil || results[2].Report == nil {
			t.Errorf("documents 0 and 2: %v, %v", errs[0], errs[2])
		}
		if !errors.Is(errs[1], ErrInvalid) || results[1].Report != nil {
			t.Errorf("document 1: err %v, report %v", errs[1], results[1].Report)
		}
	})
	t.Run("malformed last", func(t *testing.T) {
		results, errs := TranslateBatch([]byte(good+`<Report><ReportHeader>`), site)
		if len(results) != 2 || errs[0] != nil || !errors.Is(errs[1], ErrMalformed) {
			t.Errorf("got %d results, errs %v", len(results), errs)
		}
	})
	t.Run("stray element", func(t *testing.T) {
		results, errs := TranslateBatch([]byte(good+`<Inventory/>`+good), site)
		if len(results) != 2 || errs[0] != nil || !errors.Is(errs[1], ErrMalformed) || !strings.Contains(errs[1].Error(), "<Inventory>") {
			t.Errorf("got %d results, errs %v", len(results), errs)
		}
	})
	t.Run("element in wrapper", func(t *testing.T) {
		results, errs := TranslateBatch([]byte(`<Reports><Report/><Other/></Reports>`), site)
		if len(results) != 2 || !errors.Is(errs[0], ErrMissing) || !errors.Is(errs[1], ErrMalformed) {
			t.Errorf("got %d results, errs %v", len(results), errs)
		}
	})
	t.Run("empty", func(t *testing.T) {
		results, errs := TranslateBatch([]byte(" \n"), site)
		if len(results) != 1 || !errors.Is(errs[0], ErrMissing) {
			t.Errorf("got %d results, errs %v", len(results), errs)
		}
	})
}

func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"20120924183328.000000+000", 1348511608000},
		{"20120924183328.123999+000", 1348511608123},
		{"20120924203328.000000+120", 1348511608000},
		{"20120924133328.000000-300", 1348511608000},
		{"2012-09-24T18:33:28Z", 1348511608000},
		{"2012-09-24T18:33:28.5Z", 1348511608500},
		{"2012-09-24T20:33:28+02:00", 1348511608000},
		{"2012-09-24T18:33:28", 1348511608000},
		{"19691231235959.999000+000", -1},
	} {
		if got, reason := parseTime(c.in); got != c.want || reason != "" {
			t.Errorf("parseTime(%q) = %d, %q; want %d", c.in, got, reason, c.want)
		}
	}
	for _, in := range []string{"", "2012", "20120924183328.000000+1440", "20120924183328.000000 000", "20120924186028.000000+000", "2012-02-30T00:00:00Z", "24/09/2012 18:33:28"} {
		if got, reason := parseTime(in); reason == "" {
			t.Errorf("parseTime(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseHRESULT(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
		ok   bool
	}{
		{"0x80240022", -2145124318, true},
		{"0X8024402c", -2145107924, true},
		{" 0x80070005\n", -2147024891, true},
		{"2149842978", -2145124318, true},
		{"-2145124318", -2145124318, true},
		{"4294967295", 0, false}, // -1: a count's or an index's "none", not an error
		{"-1", 0, false},
		{"0xFFFFFFFF", 0, false},
		{"0xFFFFFFFE", -2, true},
		{"0x80000000", -2147483648, true},
		{"200", 0, false},
		{"0", 0, false},
		{"0x00000000", 0, false},
		{"0x7FFFFFFF", 0, false},
		{"2147483647", 0, false},
		{"0x100000000", 0, false},
		{"0x080240022", 0, false},
		{"4294967296", 0, false},
		{"-2147483649", 0, false},
		{"0x", 0, false},
		{"8024402C", 0, false},
		{"{F8C7C37F-B42B-4C0A-B050-2BB44DF1098A}", 0, false},
		{"", 0, false},
	} {
		if got, ok := parseHRESULT(c.in); got != c.want || ok != c.ok {
			t.Errorf("parseHRESULT(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if got := firstHRESULT([]string{"104", "0", "0x80070643", "0x80240022"}); got != -2147023293 {
		t.Errorf("firstHRESULT = %d, want the first failure, -2147023293", got)
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
