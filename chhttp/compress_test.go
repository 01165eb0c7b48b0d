package chhttp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/pierrec/lz4/v4"
)

// An answer framed for compress=1 is what ClickHouse's own reader (ch-go's, the Go driver's)
// reads back, block by block; a query sent with decompress=1 is read back whole, and a body
// that lies about its size or is cut is refused before anything is decompressed.
func TestNativeCompression(t *testing.T) {
	body := bytes.Repeat([]byte("KB5044284\t2\t0x80070643\n"), 3*nativeBlockSize/23) // three blocks and a bit
	framed, err := compressNative(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(framed) >= len(body) {
		t.Errorf("compressed %d bytes into %d", len(body), len(framed))
	}
	back := make([]byte, len(body))
	_, err = io.ReadFull(compress.NewReader(bytes.NewReader(framed)), back)
	if err != nil || !bytes.Equal(back, body) {
		t.Fatalf("ch-go read back %d bytes (%v), want %d", len(back), err, len(body))
	}
	if empty, err := compressNative(nil); err != nil || len(empty) != 0 {
		t.Errorf("an empty answer: %d bytes (%v)", len(empty), err)
	}

	q, err := compressNative([]byte("SELECT 1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decompressNative(q, 100); err != nil || string(got) != "SELECT 1" {
		t.Errorf("decompress: %q %v", got, err)
	}
	for name, c := range map[string]struct {
		raw   []byte
		limit int
		want  string
	}{
		"over the limit": {framed, 1 << 20, "more than"},
		"cut header":     {q[:10], 100, "cut"},
		"cut data":       {q[:len(q)-1], 100, "says"},
		"size lies":      {func() []byte { b := bytes.Clone(q); binary.LittleEndian.PutUint32(b[21:], 1<<30); return b }(), 1 << 20, "more than"},
		"bad checksum":   {func() []byte { b := bytes.Clone(q); b[0] ^= 1; return b }(), 100, "decompress"},
	} {
		if _, err := decompressNative(c.raw, c.limit); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
}

// BenchmarkCompressNative frames a 16 MiB TSV answer (report-view rows) as compress=1 does;
// BenchmarkLZ4Raw is the same bytes through pierrec/lz4 alone, the ceiling.
func BenchmarkCompressNative(b *testing.B) {
	body := benchAnswer()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := compressNative(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLZ4Raw(b *testing.B) {
	body := benchAnswer()
	b.SetBytes(int64(len(body)))
	var c lz4.Compressor
	dst := make([]byte, lz4.CompressBlockBound(nativeBlockSize))
	for b.Loop() {
		for i := 0; i < len(body); i += nativeBlockSize {
			if _, err := c.CompressBlock(body[i:min(len(body), i+nativeBlockSize)], dst); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchAnswer is 16 MiB of rows as v_update_compliance_status answers them in TSV.
func benchAnswer() []byte {
	var buf bytes.Buffer
	for i := 0; buf.Len() < 16<<20; i++ {
		fmt.Fprintf(&buf, "pc-%06d\tKB50%05d\t%d\tRequired\t2026-11-%02dT08:%02d:00Z\t%d\n", i%300000, i%97, i%4, 1+i%28, i%60, 1000+i)
	}
	return buf.Bytes()
}
