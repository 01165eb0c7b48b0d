package chhttp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/ClickHouse/ch-go/compress"
)

// ClickHouse's own compression of HTTP bodies (compress=1: the answer; decompress=1: the
// request), which its drivers ask for by default (JDBC, client-v2): a sequence of blocks, each
// a CityHash128 checksum of the rest, the method byte, the compressed and the raw size (little
// endian) and the data. ch-go's compress package (ClickHouse's Go driver's own) writes and
// checks them.

// nativeBlockSize is how much of an answer one block carries: ClickHouse's
// max_compress_block_size default.
const nativeBlockSize = 1 << 20

// nativeHeaderSize is a block's checksum (16 bytes), method (1) and sizes (4 + 4).
const nativeHeaderSize = 16 + 1 + 4 + 4

// compressNative frames body as ClickHouse's compressed blocks (LZ4); an empty body stays
// empty.
func compressNative(body []byte) ([]byte, error) {
	w := compress.NewWriter(compress.LevelZero, compress.LZ4)
	var out []byte
	for len(body) > 0 {
		n := min(len(body), nativeBlockSize)
		if err := w.Compress(body[:n]); err != nil {
			return nil, err
		}
		out = append(out, w.Data...)
		body = body[n:]
	}
	return out, nil
}

// decompressNative reads a request body of ClickHouse's compressed blocks, refusing before
// decompressing anything one whose blocks say they hold more than limit bytes, and one that
// is not whole blocks.
func decompressNative(raw []byte, limit int) ([]byte, error) {
	total := 0
	for pos := 0; pos < len(raw); {
		if len(raw)-pos < nativeHeaderSize {
			return nil, fmt.Errorf("a compressed block's header is cut at byte %d", pos)
		}
		stored := int(binary.LittleEndian.Uint32(raw[pos+17:])) // method and sizes, and the data
		size := int(binary.LittleEndian.Uint32(raw[pos+21:]))
		if stored < nativeHeaderSize-16 || len(raw)-pos-16 < stored {
			return nil, fmt.Errorf("a compressed block at byte %d says %d bytes, and %d follow", pos, stored, len(raw)-pos-16)
		}
		if total += size; total > limit {
			return nil, fmt.Errorf("the compressed query holds more than %d bytes", limit)
		}
		pos += 16 + stored
	}
	out := make([]byte, total) // what the blocks say they hold, checked as each is read
	if _, err := io.ReadFull(compress.NewReader(bytes.NewReader(raw)), out); err != nil {
		return nil, fmt.Errorf("cannot decompress the query: %w", err)
	}
	return out, nil
}
