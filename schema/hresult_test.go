package schema

import (
	"strings"
	"testing"
)

func TestHRESULTHexIsUnsignedAndPadded(t *testing.T) {
	for _, c := range []struct {
		code int32
		want string
	}{
		{-2147024891, "0x80070005"}, // E_ACCESSDENIED as a signed 32-bit integer
		{-2145107958, "0x8024400A"},
		{signed(0x87D00692), "0x87D00692"},
		{0, "0x00000000"},
		{5, "0x00000005"},
		{-1, "0xFFFFFFFF"},
	} {
		if got := HRESULTHex(c.code); got != c.want {
			t.Errorf("HRESULTHex(%d) = %s, want %s", c.code, got, c.want)
		}
	}
}

// signed is an HRESULT as it travels: a signed 32-bit integer.
func signed(code uint32) int32 { return int32(code) }

// The codes the errors report must describe (the common deployment failures of DESIGN §4).
var requiredHRESULTs = []uint32{
	0x8024400A, 0x80244010, 0x8024402C, 0x80070005, 0x80240022, 0x8024200D, 0x80070643, 0x87D00692,
	0x80244022, 0x8024401C, 0x80240438, 0x8024002E, 0x80070002, 0x800F0922, 0x80073712, 0x8007000E,
	0x80240017, 0x87D00324, 0x80244019, 0x8024A000, 0x80070BC9, 0x80242016,
}

func TestDescribeHRESULT(t *testing.T) {
	for _, code := range requiredHRESULTs {
		if d := DescribeHRESULT(signed(code)); d == "" {
			t.Errorf("%s has no description", HRESULTHex(int32(code)))
		}
	}
	if d := DescribeHRESULT(signed(0x80070005)); !strings.Contains(d, "access is denied") {
		t.Errorf("0x80070005 = %q", d)
	}
	if d := DescribeHRESULT(signed(0x8024402C)); !strings.HasPrefix(d, "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED") {
		t.Errorf("0x8024402C = %q", d)
	}
	for _, unknown := range []int32{0, 1, 0x12345678} {
		if d := DescribeHRESULT(unknown); d != "" {
			t.Errorf("%s is not in the table but is described as %q", HRESULTHex(unknown), d)
		}
	}
	// The table is the extension point: a program may add its own codes.
	const mine = 0x80249999
	HRESULTs[mine] = "MY_E_THING: test"
	defer delete(HRESULTs, mine)
	if d := DescribeHRESULT(signed(mine)); d != "MY_E_THING: test" {
		t.Errorf("registered code = %q", d)
	}
}

// Symbolic names, where given, match the code's facility: WU_E_* codes are 0x8024xxxx.
func TestHRESULTTableIsConsistent(t *testing.T) {
	for code, d := range HRESULTs {
		if d == "" || d != strings.TrimSpace(d) {
			t.Errorf("%s: empty or padded description %q", HRESULTHex(int32(code)), d)
		}
		if strings.HasPrefix(d, "WU_E_") && code>>16 != 0x8024 {
			t.Errorf("%s is described as a Windows Update Agent code: %q", HRESULTHex(int32(code)), d)
		}
		if code>>16 == 0x8024 && !strings.HasPrefix(d, "WU_E_") {
			t.Errorf("%s is a Windows Update Agent code without its WU_E_ name: %q", HRESULTHex(int32(code)), d)
		}
	}
}
