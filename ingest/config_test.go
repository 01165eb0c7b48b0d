package ingest

import (
	"flag"
	"reflect"
	"testing"
)

// The flags default to DefaultConfig and DefaultAuthConfig (the enrolment token aside: it
// defaults to the environment's).
func TestDefaultConfigsAreTheFlagsDefaults(t *testing.T) {
	t.Setenv("STATEPIPE_ENROLL_TOKEN", "")
	var c Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	c.RegisterFlags("ingest.", fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if d := DefaultConfig(); !reflect.DeepEqual(c, d) {
		t.Errorf("flag defaults %+v differ from DefaultConfig %+v", c, d)
	}
	d := DefaultConfig()
	d.Site = "P01"
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig with a site: %v", err)
	}
	for _, mode := range []string{AuthRequired, AuthOptional, AuthOff} {
		var a AuthConfig
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		a.RegisterFlags("ingest.", fs, mode)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if d := DefaultAuthConfig(mode); !reflect.DeepEqual(a, d) {
			t.Errorf("%s: flag defaults %+v differ from DefaultAuthConfig %+v", mode, a, d)
		}
	}
	if off := DefaultAuthConfig(AuthOff); off.Validate() != nil {
		t.Errorf("DefaultAuthConfig(off): %v", off.Validate())
	}
	if req := DefaultAuthConfig(AuthRequired); req.Validate() == nil {
		t.Error("DefaultAuthConfig(required) without a site key validated")
	}
}
