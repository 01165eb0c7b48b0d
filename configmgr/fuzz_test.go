package configmgr

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

// FuzzTranslate: no input panics; every report returned passes Validate and belongs to the
// document's client; every problem is an *Error with a zero Result, never a "BUG"; and
// TranslateBatch keeps its answers aligned.
func FuzzTranslate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.smx")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(withMsg()))
	f.Add([]byte(withMsg(`Type="402"`, `Type="701"`, `State ID="11"`, `State ID="0"`)))
	f.Add([]byte(`<Reports>` + withMsg()[strings.Index(withMsg(), "<Report>"):] + `</Reports>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 64<<10 { // the interesting structure fits; keep executions fast
			return
		}
		res, err := Translate(doc, site)
		checkResult(t, res, err)
		results, errs := TranslateBatch(doc, site)
		if len(results) == 0 || len(results) != len(errs) {
			t.Fatalf("TranslateBatch: %d results, %d errs", len(results), len(errs))
		}
		for i := range results {
			checkResult(t, results[i], errs[i])
		}
		if err == nil && (errs[0] != nil || !reflect.DeepEqual(results[0], res)) {
			t.Fatalf("Translate succeeded, TranslateBatch's first answer differs: %v", errs[0])
		}
	})
}

func checkResult(t *testing.T, res Result, err error) {
	t.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("err %v is a %T, want *Error", err, err)
		}
		if strings.Contains(e.Reason, "BUG") || e.Err == nil {
			t.Fatalf("err %v (class %v)", err, e.Err)
		}
		if !reflect.DeepEqual(res, Result{}) {
			t.Fatalf("err %v with a result %+v", err, res)
		}
		return
	}
	if r := res.Report; r != nil {
		if verr := r.Validate(schema.Limits{}); verr != nil {
			t.Fatalf("the report fails Validate: %v", verr)
		}
		if r.Client != res.Machine.ClientID || r.Site != site {
			t.Fatalf("report of %q at %q, machine %q", r.Client, r.Site, res.Machine.ClientID)
		}
	}
	for tt, n := range res.Skipped {
		if n <= 0 || (tt <= 0xFFFF && schema.TopicType(tt).Known()) {
			t.Fatalf("Skipped[%d] = %d", tt, n)
		}
	}
}
