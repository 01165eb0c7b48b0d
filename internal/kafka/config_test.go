package kafka

import (
	"flag"
	"reflect"
	"testing"
)

// The flags default to DefaultConfig (the password aside: it defaults to the environment's).
func TestDefaultConfigIsTheFlagsDefault(t *testing.T) {
	t.Setenv("STATEPIPE_KAFKA_PASSWORD", "")
	var c Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	c.RegisterFlags("kafka.", fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if d := DefaultConfig(); !reflect.DeepEqual(c, d) {
		t.Errorf("flag defaults %+v differ from DefaultConfig %+v", c, d)
	}
	d := DefaultConfig()
	d.Brokers = []string{"127.0.0.1:9092"}
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig with brokers: %v", err)
	}
}
