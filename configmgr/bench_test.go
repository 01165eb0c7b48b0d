package configmgr

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/text/encoding/unicode"
)

// benchDoc is a UTF-16LE document with a BOM of n state messages shaped like a client's
// full report: mostly update compliance (500), some enforcement (402, a failed one every
// tenth), a scan (501) and deployment states (300, 301, 302).
func benchDoc(tb testing.TB, n int) []byte {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-16"?>` + "\r\n")
	b.WriteString(`<Report>` + strings.Replace(header, ">Delta<", ">Full<", 1) + `<ReportBody>`)
	for i := 1; i <= n; i++ {
		typ, state, params := 500, i%4, fmt.Sprintf(`<Param>%d</Param>`, 100+i%7)
		switch {
		case i == 1:
			typ, state = 501, 3
		case i%10 == 0:
			typ, state, params = 402, 11, `<Param>104</Param><Param>0x80070643</Param>`
		case i%5 == 0:
			typ, state = 402, 10
		case i%50 == 3:
			typ, state, params = 300+i%3, 1, ``
		}
		fmt.Fprintf(&b, `<StateMessage MessageTime="20240311084510.%06d+000" SerialNumber="%d">`+
			`<Topic ID="%08x-0b7e-4d55-9a41-2f0c8e5d7b11" Type="%d" IDType="3" User="" UserSID=""/>`+
			`<State ID="%d" Criticality="0"/><UserParameters Flags="0" Count="1">%s</UserParameters></StateMessage>`,
			i, 1000+i, i, typ, state, params)
	}
	b.WriteString(`</ReportBody></Report>`)
	doc, err := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewEncoder().Bytes([]byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

// BenchmarkTranslate translates a 300-message UTF-16 document (about 170 KiB).
func BenchmarkTranslate(b *testing.B) {
	const n = 300
	doc := benchDoc(b, n)
	res, err := Translate(doc, site)
	if err != nil || res.Report == nil || len(res.Report.Messages) != n {
		b.Fatalf("bench document: %v", err)
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Translate(doc, site); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
