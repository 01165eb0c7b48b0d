package configmgr

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/unicode"
)

var bomUTF8 = []byte{0xEF, 0xBB, 0xBF}

// toUTF8 returns the input as UTF-8: UTF-16 (by its BOM, or without one by a NUL among its
// first two bytes, which UTF-8 XML cannot have) is transcoded, a UTF-8 BOM dropped, anything
// else returned as it is (encoding/xml checks that it is UTF-8).
func toUTF8(b []byte) ([]byte, *Error) {
	switch {
	case bytes.HasPrefix(b, bomUTF8):
		return b[len(bomUTF8):], nil
	case len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE:
		return fromUTF16(b[2:], unicode.LittleEndian)
	case len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF:
		return fromUTF16(b[2:], unicode.BigEndian)
	case len(b) >= 2 && b[0] != 0 && b[1] == 0:
		return fromUTF16(b, unicode.LittleEndian)
	case len(b) >= 2 && b[0] == 0 && b[1] != 0:
		return fromUTF16(b, unicode.BigEndian)
	}
	return b, nil
}

func fromUTF16(b []byte, order unicode.Endianness) ([]byte, *Error) {
	if len(b)%2 != 0 {
		return nil, &Error{Path: "Report", Reason: fmt.Sprintf("%d bytes of UTF-16, an odd number: the document is truncated or not UTF-16", len(b)), Err: ErrMalformed}
	}
	// IgnoreBOM: the BOM is gone; one inside (between concatenated documents) stays U+FEFF.
	out, err := unicode.UTF16(order, unicode.IgnoreBOM).NewDecoder().Bytes(b)
	if err != nil { // the decoder replaces what it cannot decode; this is not expected
		return nil, &Error{Path: "Report", Reason: "cannot transcode UTF-16: " + err.Error(), Err: ErrMalformed}
	}
	return out, nil
}

// charsetReader lets encoding/xml accept the encoding a declaration names once the input is
// UTF-8 (toUTF8 ran before): UTF-8 and UTF-16 by any of their usual names.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "utf-16", "utf16", "utf-16le", "utf-16be", "unicode", "ucs-2":
		return input, nil
	}
	return nil, fmt.Errorf("the declared encoding %q is not read: only UTF-8 and UTF-16", label)
}
