package chdb

import "testing"

// Malformed lengths in a RowBinary buffer are errors, never panics.
func TestRowBinaryDecoderRefusesImpossibleLengths(t *testing.T) {
	for name, b := range map[string][]byte{
		"huge string":  {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"long string":  {0x05, 'a', 'b'},
		"huge array":   {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"short UInt64": {0x01, 0x02},
	} {
		d := &rbDecoder{b: b}
		typ := "String"
		switch name {
		case "huge array":
			typ = "Array(String)"
		case "short UInt64":
			typ = "UInt64"
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panicked: %v", name, r)
				}
			}()
			d.value(typ)
		}()
		if d.err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
