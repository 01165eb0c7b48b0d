package configmgr

import (
	"strconv"
	"strings"
	"time"
)

// Times a MessageTime may hold: the range of the store's DateTime64 columns.
var (
	minTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

// parseTime reads a MessageTime as Unix milliseconds, or says why it cannot: a WMI (CIM)
// datetime yyyymmddHHMMSS.ffffff±UUU (UUU: the offset from UTC in minutes), or ISO 8601 with
// a zone (Z or ±hh:mm) or without one (UTC).
func parseTime(s string) (int64, string) {
	var t time.Time
	if len(s) == 25 && s[14] == '.' && (s[21] == '+' || s[21] == '-') {
		var ok bool
		if t, ok = parseWMI(s); !ok {
			return 0, "not a valid WMI datetime (yyyymmddHHMMSS.ffffff±UUU)"
		}
	} else {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			if t, err = time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err != nil {
				return 0, "not a WMI datetime (yyyymmddHHMMSS.ffffff±UUU) nor ISO 8601 (2006-01-02T15:04:05Z)"
			}
		}
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		return 0, "out of range (1900 ≤ year < 2300)"
	}
	return t.UnixMilli(), ""
}

// parseWMI reads a WMI datetime of 25 characters.
func parseWMI(s string) (time.Time, bool) {
	num := func(i, j int) int {
		n := 0
		for _, c := range []byte(s[i:j]) {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(4, 6), num(6, 8)
	hour, minute, sec := num(8, 10), num(10, 12), num(12, 14)
	micro, offset := num(15, 21), num(22, 25)
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
		minute < 0 || minute > 59 || sec < 0 || sec > 59 || micro < 0 || offset < 0 || offset >= 24*60 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC)
	if t.Day() != day { // 31 April
		return time.Time{}, false
	}
	if s[21] == '-' {
		offset = -offset
	}
	return t.Add(-time.Duration(offset) * time.Minute), true
}

// firstHRESULT returns the first param that is a failure HRESULT (parseHRESULT), or 0.
func firstHRESULT(params []string) int32 {
	for _, p := range params {
		if code, ok := parseHRESULT(p); ok {
			return code
		}
	}
	return 0
}

// parseHRESULT reads a failure HRESULT — severity bit set — written as "0x" and 1–8 hex
// digits or as a decimal that fits int32 (negative) or uint32 (≥ 2^31), surrounding white
// space allowed. -1 (0xFFFFFFFF, 4294967295) is not one: it is what a count or an index says
// when it has none, and no facility defines it as an error.
func parseHRESULT(s string) (int32, bool) {
	s = strings.TrimSpace(s)
	var u uint64
	var err error
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		if len(s) > 10 {
			return 0, false
		}
		u, err = strconv.ParseUint(s[2:], 16, 32)
	case strings.HasPrefix(s, "-"):
		var n int64
		if n, err = strconv.ParseInt(s, 10, 32); err == nil {
			u = uint64(uint32(int32(n)))
		}
	default:
		u, err = strconv.ParseUint(s, 10, 32)
	}
	if err != nil || u&0x80000000 == 0 || u == 0xFFFFFFFF {
		return 0, false
	}
	return int32(uint32(u)), true
}
