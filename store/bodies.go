package store

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Message bodies are stored zstd-compressed on SQLite: a CarePlan message is
// 13-19 KB of FHIR JSON or XML, 4 of the ~14 pages a POST writes to the WAL
// (and writes again at the checkpoint), and the one writer every request waits
// for does that I/O. Compressed, it is one page (BenchmarkBodyCodec: about 6×
// smaller, ~30 µs to compress and ~15 µs to decompress a CarePlan).
// PostgreSQL compresses large values itself (TOAST), so bodies go there as
// they are. Reading tells the two apart by zstd's frame magic: JSON starts
// with '{' and XML with '<', never with 0x28 0xB5 0x2F 0xFD, so bodies
// written before compression read as they are.

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

var (
	// EncodeAll and DecodeAll may be called concurrently on one encoder/decoder.
	bodyEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true))
	bodyDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
)

// encodeBody is what the store writes for body on this dialect.
func (t *Tx) encodeBody(body []byte) []byte {
	if t.dialect != SQLite {
		return body
	}
	return bodyEncoder.EncodeAll(body, make([]byte, 0, len(body)/4+64))
}

// decodeBody returns a stored body as it was posted.
func decodeBody(stored []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, zstdMagic) {
		return stored, nil
	}
	b, err := bodyDecoder.DecodeAll(stored, make([]byte, 0, 4*len(stored)))
	if err != nil {
		return nil, fmt.Errorf("decompress message body: %w", err)
	}
	return b, nil
}
